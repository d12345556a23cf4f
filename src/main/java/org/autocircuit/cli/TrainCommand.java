package org.autocircuit.cli;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.training.InductionTask;
import org.autocircuit.training.ModelFolder;
import org.autocircuit.training.TrainConfig;
import org.autocircuit.training.TrainableWeights;
import org.autocircuit.training.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Trains the small attention-only induction model from a seed and writes it as a model folder (config.json with
 * the recipe, model.safetensors, vocab.txt). The defaults reproduce the bundled datasets/models/induction-2l.
 */
@Command(name = "train", mixinStandardHelpOptions = true,
    description = {"Train a 2-layer attention-only transformer on repeated random tokens (it learns a previous-token",
        "head and an induction head) and write it as a model folder. Defaults reproduce datasets/models/induction-2l."})
final class TrainCommand implements Callable<Integer> {
    private static final TrainConfig D = TrainConfig.defaults();

    @Option(names = "--out", description = "Model folder to write (default: datasets/models/induction-2l).")
    Path out;

    @Option(names = "--force", description = "Replace --out (and --dataset) if it exists.") boolean force;

    @Option(names = "--dataset", description = "Also write the clean/corrupt induction prompts (AutoCircuit JSON) here.")
    Path dataset;

    @Option(names = "--dataset-only", description = "Write --dataset and exit without training.") boolean datasetOnly;

    @Option(names = "--dataset-prompts", description = "Prompt pairs in --dataset (default: ${DEFAULT-VALUE}).",
        defaultValue = "128") int datasetPrompts;
    @Option(names = "--dataset-seed", description = "Seed of the prompts (default: ${DEFAULT-VALUE}).",
        defaultValue = "2024") long datasetSeed;

    @Option(names = "--seed") Long seed;
    @Option(names = "--steps") Integer steps;
    @Option(names = "--batch-size") Integer batchSize;
    @Option(names = "--lr") Double learningRate;
    @Option(names = "--warmup") Integer warmup;
    @Option(names = "--weight-decay") Double weightDecay;
    @Option(names = "--vocab-words") Integer vocabWords;
    @Option(names = "--d-model") Integer dModel;
    @Option(names = "--heads") Integer heads;
    @Option(names = "--layers") Integer layers;
    @Option(names = "--n-ctx") Integer nCtx;
    @Option(names = "--min-repeat") Integer minRepeat;
    @Option(names = "--max-repeat") Integer maxRepeat;
    @Option(names = "--init-range") Double initRange;

    @Option(names = "--log-every", defaultValue = "100", description = "Print the loss every N steps (default: ${DEFAULT-VALUE}).")
    int logEvery;

    @Override
    public Integer call() throws Exception {
        Path target = out != null ? out : Main.home().resolve("datasets/models/induction-2l");
        if (dataset != null) {
            Outputs.check(dataset, "--dataset", force, org.autocircuit.util.AtomicFiles.Ownership.NONE,
                datasetOnly ? java.util.List.of() : java.util.List.of(target));
            if (!datasetOnly && dataset.toAbsolutePath().normalize().startsWith(target.toAbsolutePath().normalize())) {
                throw new IllegalArgumentException("--dataset " + dataset + " lies inside the model folder --out " + target
                    + ", which training replaces; write it elsewhere");
            }
        }
        if (datasetOnly) {
            if (dataset == null) throw new IllegalArgumentException("--dataset-only needs --dataset FILE");
            writeDataset(new InductionTask(or(vocabWords, D.vocabWords())), or(maxRepeat, D.maxRepeat()));
            return 0;
        }
        if (java.nio.file.Files.exists(target) && !force) {
            throw new IllegalArgumentException("output folder " + target + " already exists; pass --force to replace it");
        }
        TrainConfig cfg = new TrainConfig(
            or(seed, D.seed()), or(steps, D.steps()), or(batchSize, D.batchSize()), or(learningRate, D.learningRate()),
            or(warmup, D.warmupSteps()), or(weightDecay, D.weightDecay()), or(vocabWords, D.vocabWords()),
            or(dModel, D.dModel()), or(heads, D.nHeads()), or(layers, D.nLayers()), or(nCtx, D.nCtx()),
            or(minRepeat, D.minRepeat()), or(maxRepeat, D.maxRepeat()), or(initRange, D.initRange()));
        System.out.println("training " + cfg);
        long t0 = System.nanoTime();
        double[] lastLoss = {Double.NaN};
        double[] smoothed = {Double.NaN};
        int every = Math.max(1, logEvery);
        try (TrainableWeights weights = Trainer.train(cfg, (step, loss, lr) -> {
            lastLoss[0] = loss;
            smoothed[0] = Double.isNaN(smoothed[0]) ? loss : 0.95 * smoothed[0] + 0.05 * loss;
            if ((step + 1) % every == 0 || step + 1 == cfg.steps()) {
                System.out.printf(Locale.ROOT, "step %5d/%d  loss %.4f (avg %.4f)  lr %.2e  %.1f s%n", step + 1,
                    cfg.steps(), loss, smoothed[0], lr, (System.nanoTime() - t0) / 1e9);
            }
        })) {
            double seconds = (System.nanoTime() - t0) / 1e9;
            double accuracy;
            try (HookedTransformer model = weights.model()) {
                accuracy = Trainer.inductionAccuracy(model, cfg, cfg.seed() + 1, 256);
            }
            String command = "autocircuit train --seed " + cfg.seed() + " --steps " + cfg.steps();
            InductionTask task = new InductionTask(cfg.vocabWords());
            ModelFolder.write(target, force, weights, cfg, task.vocabulary(),
                new ModelFolder.RunInfo(seconds, lastLoss[0], command));
            System.out.printf(Locale.ROOT, "trained %d parameters in %.1f s; accuracy on the repeated half of 256 fresh"
                + " sequences: %.4f%nwrote %s%n", weights.count(), seconds, accuracy, target);
            if (dataset != null) writeDataset(task, cfg.maxRepeat());
        }
        return 0;
    }

    /** The prompts: runs of 10 words (or maxRepeat if shorter), the second copy cut after 6 (repeat/2 + 1). */
    private void writeDataset(InductionTask task, int maxRepeatLen) throws java.io.IOException {
        int repeat = Math.min(10, maxRepeatLen);
        Datasets.write(dataset, task.prompts(datasetSeed, datasetPrompts, repeat, repeat / 2 + 1));
        System.out.println("wrote " + dataset);
    }

    private static <T> T or(T value, T fallback) {
        return value != null ? value : fallback;
    }
}
