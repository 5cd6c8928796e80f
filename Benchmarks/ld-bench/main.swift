// ld-bench: the project's benchmarks (`make bench`). Not part of the product; prints one line per figure.
import Shared

streamBench()
