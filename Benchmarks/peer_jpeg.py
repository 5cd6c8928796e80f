"""Runs ../shared/peer/jpeg_bench.py (PIL + torchvision image loading) with the import fix torchvision 0.28
needs beside a CPU-only torch 2.13 (see peer_seeds.py). Same arguments: make DIR ... | time DIR ...
Not part of ld; `make bench-jpeg` runs it beside `ld-bench jpeg` when PEER_PYTHON is set."""
import os, runpy, sys, types
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
peer = os.environ.get("PEER_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peer"))
sys.argv = ["jpeg_bench.py"] + sys.argv[1:]
runpy.run_path(os.path.join(peer, "jpeg_bench.py"), run_name="__main__")
