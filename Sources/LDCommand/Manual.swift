// The long help of each tool (`--help`, and the man pages ArgumentParser generates from it): what the tool
// does, its modes and defaults, and examples that the tests parse. Kept beside the flags they explain, out of
// the tools' main.swift, which hold only the command line and the call of a job.

public enum Manual {
    public static let squeeze: String =
        """
        Trains a classifier on --data with hard labels (shuffled mini-batches, per-image augmentation, cross-entropy, \
        linear warm-up then per-step cosine decay), evaluates it on --val after every epoch, and writes the model \
        file (-o) with the data set's normalisation and class names. Per-epoch metrics go to stdout (or --metrics) \
        as NDJSON; progress (epoch, step, loss, images/s, time left) goes to stderr.

        Defaults are the Fashion-MNIST teacher: ConvNet-BN width 64, depth 3, 12 epochs, batch 128, SGD lr 0.05 \
        momentum 0.9 weight decay 5e-4 (all parameters), 1 warm-up epoch, horizontal flip only (--augment crop with \
        --crop-padding 0; with padding 2 the same run underfits and stops at 91.9%). Width 64 (the DC papers' ConvNet \
        has 128) costs a quarter of the compute and still reaches >= 92% top-1 on fmnist:test; recover and \
        relabel get 4x cheaper with it too. The run is about 13 minutes on two idle cores with OpenBLAS's AVX-512 \
        kernels (longer on a busy machine). Where `-v` shows "OpenBLAS core Prescott" (CPU not recognised, slow \
        SSE3 kernels), export OPENBLAS_CORETYPE=SkylakeX (or Haswell) first: training is 1.6-2.5x faster.

        --class-stats: after training, one pass over the training images (eval mode, no augmentation) stores each \
        BatchNorm layer's per-class input mean and biased variance in the model file (LPLD's "model with class \
        BN"). --class-stats-mode exact (default) stores the exact moments over every image of the class; ema \
        reproduces LPLD's estimator: one shuffled pass, per-batch class subsets, EMA with momentum 0.1.

        --scores FILE: training-dynamics scores recorded during training, in train mode, on the augmented view each \
        example gets in each epoch, from the softmax at that step: a record stream of kind `scores` with one \
        record per training example (by index) and columns el2n (||p - onehot(y)||_2 averaged over the first \
        --el2n-epochs epochs; the CCS code sums them, same ranking), forgetting (correct-to-incorrect transitions; \
        never-learned examples score 0), aum (p_y - max_{k!=y} p_k summed over all epochs, on probabilities) and \
        correct (epochs classified correctly).

        Checkpoints: after every epoch the whole state goes to OUTPUT.ckpt (atomically). Ctrl-C (SIGINT) or SIGTERM \
        finishes the current step, writes the checkpoint and exits 130 (143); the same command with --resume \
        continues bit-identically (same flags required; a different flag is refused; a --metrics file gets the \
        earlier epochs' lines again, stdout only the new ones). A non-finite loss stops the \
        run with the epoch, step and learning rate and keeps the last good checkpoint. The checkpoint is removed \
        after a successful run.

        PyTorch interchange: --import FILE reads a state dict with torchvision's names (a .safetensors file or a \
        torch.save checkpoint, zip or pre-1.6 legacy format: a state dict, or a dict holding one under \
        'state_dict' or 'model', with or without DataParallel's 'module.' prefix; float16 and bfloat16 are \
        widened) and writes it as an ld model file (-o), which then works everywhere a teacher does; with \
        --class-stats --data SET the import also stores LPLD's per-class BatchNorm statistics of the pretrained \
        teacher on SET. The architecture is read off the names and shapes (resnet18, resnet50, resnet101: conv1, bn1, layer1-4, fc, \
        basic or bottleneck blocks by their count per stage, \
        the stem from conv1.weight's 7x7 or 3x3; convnet: the DC/DSA ConvNet-BN, features.4d / features.4d+1 for \
        block d's conv and BN, classifier) and printed; a missing, extra or mis-shaped key is an error naming \
        it. The pickle is read by a restricted reader (dicts of tensors only) that refuses any other global, \
        e.g. os.system, by name and runs nothing. Normalisation, input size and class names: --preset (imagenet: \
        torchvision's mean and std, 224 px; cifar10, cifar100, fmnist, tiny-imagenet), or --mean, --std, \
        --image-size, --class-names FILE (these win over the preset). The imagenet preset names classes by \
        index; for names give --class-names (one a line, in torchvision's order). --export MODEL -o \
        FILE.safetensors writes an ld model with torchvision's names (num_batches_tracked as int64 0) and, in \
        __metadata__, architecture, stem, input_size, mean, std, class_names as JSON strings: PyTorch loads it \
        with model.load_state_dict(safetensors.torch.load_file(FILE), strict=True) into \
        torchvision.models.resnet18(num_classes=K) (small stem: conv1 = Conv2d(C, 64, 3, 1, 1, bias=False), \
        maxpool = Identity()) or the DC/DSA ConvNet with BatchNorm. Per-class BN statistics stay in the ld file.

        """ + ModelOptions.modelsHelp + """


        Examples:
          ld-squeeze --data fmnist:train --val fmnist:test -o teacher.ldm --class-stats --scores scores.lds
          ld-squeeze --eval-only teacher.ldm --val fmnist:test
          ld-squeeze --data folder:nette/train --image-size 224 --augment rrc -o t.ldm
          ld-squeeze --eval-only r18.ldm --val list:LOC_val_solution.csv:val
          ld-squeeze --import resnet18.pth --preset imagenet -o teacher.ldm
          ld-squeeze --import cifar.safetensors --preset cifar10 -o teacher.ldm
          ld-squeeze --export student.ldm -o student.safetensors
        """

    public static let recover: String =
        """
        Each image starts as Gaussian noise in the teacher's normalised pixel
        space and is optimised with Adam (betas 0.5, 0.9; a fresh optimiser and
        a cosine learning rate per batch) so that the frozen teacher classifies
        it as its class and the per-channel mean and biased variance at every
        BatchNorm input match a target:
          loss = CE + r_bn * (first-bn-multiplier * R_0 + R_1 + ...),
          R_l  = ||var_l - var*_l||_2 + ||mean_l - mean*_l||_2.
        Each step draws ONE crop box (RandomResizedCrop), ONE flip and ONE roll
        (0..jitter pixels per axis) for the whole batch, in that order; after
        the step pixels are clamped to [0, 1]. The last iterate is saved as
        floor(pixel * 255).

          sre2l  cross-class batches: one image of each class of a chunk of
                 --batch-size classes (default all) per IPC index; BN target:
                 the teacher's running statistics.
          cda    sre2l with a crop-scale curriculum: the lower bound falls from
                 1 to the --crop-scale minimum (default 0.5) over the first
                 --milestone of the iterations (--easy2hard-mode).
          lpld   within-class batches (--batch-size images, default --ipc);
                 BN target: that class's statistics (ld-squeeze --class-stats).
          rded   no optimisation (RDED, CVPR'24): per class, --candidates
                 (300) real images of --data, --crops (5) square random
                 crops of each (--crop-scale, default 0.08,1) resized to the
                 full size; each image keeps the crop the teacher is surest
                 of (lowest CE on the class), and the --combine^2 x IPC best
                 are tiled F x F per image as ld-prune --combine tiles (F 2;
                 the paper's ConvNet scripts use 1 at 32 px). Departures:
                 crops are scored at full size, not zero-padded; cells are
                 area-downsampled, not nearest-neighbour.

        Defaults follow the reference Fashion-MNIST pipeline: 1000 iterations,
        lr 0.25, r-bn 0.01, first BN x10, crop scale 0.5-1, flip, jitter 2;
        cda's curriculum falls from the whole image to the same 0.5. The crop
        keeps the BN loss of a 28-pixel image well above a crop-free run's
        (--crop-scale 1,1, the seeds' CIFAR recipe, matches the statistics
        ~100x better) but trains better students.

        Start (--init): noise, the seeds' N(0, 1) per image; or real (EDC),
        a real image of the class from --data, chosen per class over the whole
        class (so shards agree) by --select:
          random      ld-prune --select random's draw for the same --seed: the
                      random real subset of that seed, image for image;
          confident   the teacher's lowest cross-entropy on the image's class
                      (--keep hard: the highest);
          el2n, forgetting, aum, ccs  ld-prune's rules on --scores (default
                      --keep easy here).
        The manifest lists the data set index each image started from
        (init_sources, per class).

        Ensemble (G-VBSM, EDC): --teacher given K times matches every
        teacher's BN statistics with its own CE, each teacher weighted 1/K
        (loss and gradient are the teachers' mean, so two copies of one
        teacher make that teacher's images bit for bit). The teachers must
        take the same images and classes with the same normalisation; the
        first one reports the top-1 and writes its hash in streams.

        Output: --png DIR, a PNG ImageFolder (DIR/000/ipc0000.png, ...), with
        manifest.json (settings, teacher hash, mean, std, class names) written
        last; and/or -o FILE, an image record stream (`-` is stdout).

        Shards: random draws are keyed by class, image and batch, so shards
        (--classes A:B, --ipc-start/--ipc-end) make exactly the images of the
        whole run. Run them into one --png folder (or merge their folders and
        re-run the whole command there, which only writes the manifest), or
        `cat` their streams. Batches are fixed chunks of the whole run: class
        ranges must fall on multiples of --batch-size for sre2l/cda, IPC
        ranges for lpld. Resume: the same command skips every batch whose
        images are all in the --png folder. Give every shard the same --threads (1 for
        bit-identical results on any machine).

        At the end the teacher's top-1 on the saved images and the BN loss at
        the first and last iteration (mean over batches) go to stderr, and as
        one NDJSON line to stdout.

        Examples:
          ld-recover --teacher teacher.ldm --method lpld --ipc 10 --png syn/
          ld-recover --teacher teacher.ldm --batch-size 5 --classes 0:5 \\
            -o part0.ldi
          ld-recover --teacher teacher.ldm --method lpld --init real \\
            --data fmnist:train --select confident --png syn/
          ld-recover --teacher a.ldm --teacher b.ldm --png syn/
          ld-recover --teacher teacher.ldm --method rded --combine 1 \\
            --data fmnist:train --png rded/
        """

    public static let relabel: String =
        """
        Each epoch shuffles the images (a permutation keyed by the seed and the epoch) and cuts them into \
        batches of --batch-size; the last batch of an epoch is partial unless --drop-last. Each image gets a \
        RandomResizedCrop box (torchvision's rule, --crop-scale) and a horizontal flip (p = 0.5); each batch \
        is mixed (--mix: CutMix by default, as the seeds). The teacher, in eval mode and with its own \
        normalisation, labels the augmented batch; its raw logits are stored with everything needed to \
        rebuild that batch exactly: one label-batch record per batch, in global batch order (batch id = \
        epoch * batches_per_epoch + batch), on stdout or -o FILE.

        Every draw is keyed by (seed, epoch, batch, image position), so --epochs A:B produces exactly the \
        records of epochs A..<B of the whole run: shards made anywhere concatenate (cat) into the full stream \
        (same label records byte for byte; each shard keeps its own header and end record, whose epoch range \
        in the meta differs). Memory is one batch, whatever the number of epochs. ld-train --teacher draws \
        its batches with the same keys.

        Bytes per image and epoch: 2K + 13 (fp16), 4K + 13 (fp32) or 4k + 13 \
        (--top-k k), plus 4 with a mix; per batch 44 (56 with a mix). The seeds' \
        files take about 2K + 25 (sre2l_cda.md 6.2). --zstd compresses the stream.

        Examples (Fashion-MNIST, 100 synthetic images, 300 epochs, batches of 50):
          ld-relabel --teacher t.ldm --data syn/ --epochs 300 --batch-size 50 > l.ldl
          ld-relabel --teacher t.ldm --data syn/ --epochs 0:150 --epochs-total 300 \\
            --batch-size 50 -o a.ldl
          ld-relabel --teacher t.ldm --data syn/ --epochs 150:300 --batch-size 50 \\
            -o b.ldl
          cat a.ldl b.ldl | ld-prune --dump | head
        """

    public static let prune: String =
        """
        Four modes: --ratio (label streams), --ipc (image subsets), --pack, --dump.

        Label mode (--ratio; the input is a label stream from ld-relabel) keeps exactly
        round(N/R) of the N label-batch records, rounded half away from zero,
        and writes them in global batch order as a label stream with the same
        header plus meta.pruned (which tells ld-train the records form a pool).
          random      seeded uniform subset (LPLD's pool); one pass, holds
                      about round(N/R) records, writes at the end of input
          prefix      global ids < round(epochs x batches_per_epoch / R)
                      (LPLD's less-label generation); streams through
          confidence  mean largest teacher probability of the batch
          margin      mean gap between the top two teacher probabilities
          cut-ratio   share of the original image: 1 - CutMix box area /
                      image area, Mixup lambda, 1 unmixed
          correct     share of the batch whose teacher argmax is the image's
                      class (needs --data, the image set of the labels)
        Metric rules keep the --keep easy (high) or hard (low, default) end.

        Image mode (--ipc K --data DATASET) picks K images per class by --select
        random|el2n|forgetting|aum|ccs using ld-squeeze's scores (--scores),
        and writes an image stream (-o) and/or a PNG folder (--png).
        hard = high EL2N, high forgetting, low AUM. ccs drops each class's
        lowest-AUM fraction --ccs-cutoff, cuts the rest into --ccs-strata
        equal-width strata of --ccs-score and spreads the budget over them by
        water-filling. meta.source_indices (and the folder's manifest.json)
        give each kept image's index in DATASET.

        --combine F (RethinkDC's Prune-Combine): select F^2 x K images per
        class by the same rule, downsample each whole image to one cell of an
        F x F grid (area averaging; an axis of n pixels is cut so the first
        n mod F cells are one pixel longer, as RDED) and tile F x F images of
        a class into one canvas of the original size, so the output holds
        exactly K = --ipc images per class. The n-th image of a class in the
        rule's rank order (for el2n easy: the n-th easiest) goes to canvas
        n mod K, cell n div K, cells row-major: the K best lead the K
        canvases. The output records meta.grid = F and
        meta.cell_source_indices (per canvas, each cell's index in DATASET),
        in the stream header and in manifest.json; ld-train
        --grid-aware-crop reads the grid from there.

        Pack mode (--pack --data DATASET) writes the whole set as an image
        stream, decoded once: with --image-size S an image folder of any sizes
        (JPEG or PNG) is brought to S x S by the evaluation transform (shorter
        side to S/0.875, center crop S), the fast input for repeated epochs.
        --shard K/N writes the K-th of N contiguous parts with their global
        indices; `cat` of all N parts loads as the whole set.

        --report prints, as NDJSON on stderr (or --report-file), the bytes in
        and out per component (indices, boxes, flips, mix, logits, fields,
        framing, header), the compression ratio, the peak memory and, with
        --data, the images' bytes as PNG and raw.

        Examples:
          ld-relabel ... | ld-prune --ratio 40 | ld-train --data syn/ ...
          cat shard-*.ldl | ld-prune --ratio 33.3 --rule prefix -o pool.ldl
          ld-prune --ratio 40 --report --data syn/ < labels.ldl > pruned.ldl
          ld-prune --data fmnist:train --select random --ipc 10 -o subset.ldi
          ld-prune --data fmnist:train --scores s.lds --select ccs --ipc 50 \\
            --png subset/
          ld-prune --data fmnist:train --scores s.lds --select el2n \\
            --keep easy --ipc 10 --combine 2 -o pca.ldi
          ld-prune --pack --data folder:imagenette/train --image-size 64 -o nette64.ldi
          ld-prune --dump pruned.ldl | jq -c 'select(.type == "header")'
        """

    public static let train: String =
        """
        The student starts from random weights and learns from exactly one
        label source:

        --labels FILE|-  a label stream from ld-relabel or ld-prune. Each
            record is replayed exactly: its images, crop boxes, flips and
            mix are re-applied and its logits are the KL targets.
            A complete stream (not pruned, at least --epochs epochs stored)
            is read as it arrives: training epoch e replays stored epoch e
            in order, and only the current record is in memory. Otherwise
            (pruned, fewer stored epochs, or --pool-sampling given) the
            records form LPLD's label pool: all are read first, and each
            epoch replays batches_per_epoch of them (the relabel run's
            count, from the header) drawn with or without replacement,
            keyed by (seed, epoch). With no label source named and stdin
            a pipe or a file, the labels are read from stdin.
        --teacher MODEL  online soft labels (RethinkDC's soft protocol): each
            epoch shuffles the images, draws per-image augmentations and a
            per-batch mix with ld-relabel's keys, and the teacher (eval
            mode) labels exactly the batch the student sees.
        --hard  the images' own classes with cross-entropy (RethinkDC's hard
            protocol, DC's).

        Normalisation: the teacher's with --teacher; with --labels the
        stream's mean/std if its header has them, else the --val set's
        published constants; with --hard the --val set's.

        Recipes (--recipe) set every knob; flags given override them:
          lpld (default)  AdamW lr 1e-3, wd 0.01 on conv/linear kernels only,
                          cosine per epoch, 300 epochs, KL at T=20 (batchmean,
                          no T^2), batch 128, RandomResizedCrop 0.08-1 + flip,
                          CutMix, evaluation every 10 epochs
          sre2l           the same with batch 1024
          rethinkdc-soft  as lpld, evaluation every 50 epochs
          rethinkdc-hard  as rethinkdc-soft with cross-entropy and no mix
          dc              SGD lr 0.01, momentum 0.9, wd 5e-4 on every
                          parameter, batch 256, lr x0.1 from epoch E/2,
                          RandomResizedCrop 0.5-1 + flip, no mix, evaluation
                          at the end
        --hard without --recipe uses dc. With --labels, epochs and batch
        size default to the relabel run's.

        --grid-aware-crop (RethinkDC's PCA Augment, with --hard or --teacher):
        the images are canvases of F x F cells (ld-prune --combine F records
        meta.grid = F; --grid F gives or overrides it). Each image's
        RandomResizedCrop first picks one of the F^2 cells, then draws its
        window inside that cell, the --crop-scale range relative to the
        cell's area, so a view never shows a seam between two images.

        Output: an NDJSON line per evaluation on stdout (epoch, top1, top5,
        val loss, train loss, lr, wall_s), then a summary line (best and last
        accuracy, epochs, images, label records and bytes read, the resolved
        recipe, wall time, the saved model's hash). Progress on stderr.

        Evaluation is cheap by default: every --eval-every epochs (the
        recipe's) on --eval-sample 1000 images spread over --val, and on the
        whole set after the last epoch (the summary's accuracies; its best
        is over the evaluations on the whole set). For dense curves on the
        whole set: --eval-every 1 --eval-sample 0.

        """ + ModelOptions.modelsHelp + """


        Examples:
          ld-relabel --teacher t.ldm --data syn/ --epochs 300 --batch-size 50 \\
            | ld-prune --ratio 40 \\
            | ld-train --data syn/ --val fmnist:test
          ld-train --data pca.ldi --hard --grid-aware-crop --val fmnist:test
          ld-train --data syn/ --teacher t.ldm --val fmnist:test -o student.ldm
        """

}
