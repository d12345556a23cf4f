package org.autocircuit.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.autocircuit.cli.Main;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.TransformerShape;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Tokenizers;
import org.autocircuit.tasks.WordTokenizer;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainerTest {
    static final TrainConfig SHORT = TrainConfig.defaults().withSteps(25);

    @Test
    void sameSeedGivesIdenticalWeights() {
        List<Double> lossesA = new ArrayList<>(), lossesB = new ArrayList<>();
        List<float[]> a, b, c;
        try (TrainableWeights w = Trainer.train(SHORT, (s, loss, lr) -> lossesA.add(loss))) {
            a = w.snapshot();
        }
        try (TrainableWeights w = Trainer.train(SHORT, (s, loss, lr) -> lossesB.add(loss))) {
            b = w.snapshot();
        }
        TrainConfig otherSeed = new TrainConfig(2, 25, 32, 1e-3, 100, 0.01, 64, 64, 4, 2, 32, 4, 12, 0.02);
        try (TrainableWeights w = Trainer.train(otherSeed, Trainer.StepListener.NONE)) {
            c = w.snapshot();
        }
        assertEquals(lossesA, lossesB);
        try (TrainableWeights init = TrainableWeights.init(Trainer.modelConfig(SHORT), SHORT.seed(), SHORT.initRange())) {
            assertFalse(Arrays.equals(init.snapshot().get(0), a.get(0)), "training changed the weights");
        }
        for (int i = 0; i < a.size(); i++) assertArrayEquals(a.get(i), b.get(i), "weight " + i);
        assertFalse(Arrays.equals(a.get(0), c.get(0)), "another seed, other weights");
    }

    /** Training runs single-threaded; the process's libtorch and OpenBLAS thread counts are restored afterwards. */
    @Test
    void threadCountsAreRestoredAfterTraining() {
        int torchBefore = org.bytedeco.pytorch.global.torch.get_num_threads();
        int blasBefore = org.bytedeco.openblas.global.openblas_nolapack.blas_get_num_threads();
        try (TrainableWeights w = Trainer.train(TrainConfig.defaults().withSteps(1), Trainer.StepListener.NONE)) {
            assertEquals(torchBefore, org.bytedeco.pytorch.global.torch.get_num_threads(), "libtorch threads");
            assertEquals(blasBefore, org.bytedeco.openblas.global.openblas_nolapack.blas_get_num_threads(), "OpenBLAS threads");
        }
    }

    @Test
    void configValidatesAndRoundTrips() {
        TrainConfig d = TrainConfig.defaults();
        assertEquals(d, TrainConfig.fromJson(d.toJson(), "test"));
        assertThrows(IllegalArgumentException.class, () -> new TrainConfig(1, 0, 32, 1e-3, 0, 0, 64, 64, 4, 2, 32, 4, 12, 0.02));
        assertThrows(IllegalArgumentException.class, () -> new TrainConfig(1, 1, 32, 1e-3, 0, 0, 64, 64, 3, 2, 32, 4, 12, 0.02));
        assertThrows(IllegalArgumentException.class, () -> new TrainConfig(1, 1, 32, 1e-3, 0, 0, 64, 64, 4, 2, 20, 4, 12, 0.02));
        var e = assertThrows(IllegalArgumentException.class, () -> TrainConfig.fromJson(d.toJson().remove("seed") == null
            ? null : d.toJson().without("seed"), "cfg.json"));
        assertTrue(e.getMessage().contains("'seed'"), e.getMessage());
        assertEquals(1e-3 / 100, d.learningRateAt(0), 1e-12);
        assertEquals(1e-4, d.learningRateAt(d.steps() - 1), 1e-6);
    }

    @Test
    void committedModelRecordsItsRecipeAndLoads() throws IOException {
        Path dir = Fixtures.resource("models/induction-2l");
        var root = new com.fasterxml.jackson.databind.ObjectMapper().readTree(dir.resolve("config.json").toFile());
        assertEquals(TrainConfig.defaults(), TrainConfig.fromJson(root.path("autocircuit_training").path("config"), "config.json"));
        try (HookedTransformer m = HookedTransformer.fromPretrained(dir)) {
            assertEquals(Trainer.modelConfig(TrainConfig.defaults()), m.config());
        }
        assertEquals(new InductionTask(64).vocabulary(), ((WordTokenizer) Tokenizers.forModel(dir)).vocabulary());
    }

    @Test
    void committedDatasetIsTheGeneratorsOutput() throws IOException {
        var generated = new InductionTask(64).prompts(2024, 128, 10, 6);
        var committed = Datasets.readFile(BundledInductionModelTest.DATASET);
        assertEquals(generated, committed);
        for (var p : committed.prompts()) {
            String[] clean = p.clean().textValue().split(" "), corrupt = p.corrupt().textValue().split(" ");
            assertEquals(16, clean.length);
            assertEquals(16, corrupt.length);
            assertArrayEquals(Arrays.copyOfRange(clean, 10, 16), Arrays.copyOfRange(corrupt, 10, 16));
            String answer = p.answers().get(0).textValue(), wrong = p.wrongAnswers().get(0).textValue();
            assertEquals(clean[6], answer);
            assertFalse(List.of(clean).contains(wrong));
            assertFalse(List.of(corrupt).contains(answer));
            int j = List.of(corrupt).subList(0, 10).indexOf(clean[15]);    // the current token in the corrupt copy
            assertTrue(j >= 0 && j != 5 && corrupt[j + 1].equals(wrong), p.toString());
        }
    }

    @Test
    void trainCommandWritesALoadableFolderAndRefusesToOverwrite(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("m");
        String[] args = {"train", "--out", out.toString(), "--steps", "3", "--log-every", "1",
            "--dataset", tmp.resolve("d.json").toString()};
        assertEquals(0, Main.execute(args));
        try (HookedTransformer m = HookedTransformer.fromPretrained(out)) {
            assertEquals(65, m.config().dVocab());
        }
        assertEquals(128, Datasets.readFile(tmp.resolve("d.json")).prompts().size());
        long before = Files.getLastModifiedTime(out.resolve("model.safetensors")).toMillis();
        assertEquals(2, Main.execute(args));                          // exists, no --force
        assertEquals(before, Files.getLastModifiedTime(out.resolve("model.safetensors")).toMillis());
        String[] forced = Arrays.copyOf(args, args.length + 1);
        forced[args.length] = "--force";
        assertEquals(0, Main.execute(forced));
        try (var files = Files.list(tmp)) {
            assertEquals(List.of("d.json", "m"), files.map(f -> f.getFileName().toString()).sorted().toList());
        }
    }

    /**
     * The full default recipe reproduces the committed model's behaviour. Bitwise equality holds on the machine
     * that trained it (single-threaded libtorch and OpenBLAS); another CPU may round sums differently, so this
     * compares behaviour and reports the weight difference.
     */
    @Test
    @Tag("slow")
    void fullTrainingReproducesTheCommittedModel() throws IOException {
        Path dir = Fixtures.resource("models/induction-2l");
        TrainConfig cfg = TrainConfig.defaults();
        try (TrainableWeights trained = Trainer.train(cfg, Trainer.StepListener.NONE);
             TrainableWeights committed = TrainableWeights.load(Trainer.modelConfig(cfg), dir.resolve("model.safetensors"))) {
            List<float[]> a = trained.snapshot(), b = committed.snapshot();
            double maxDiff = 0;
            for (int i = 0; i < a.size(); i++) {
                for (int j = 0; j < a.get(i).length; j++) maxDiff = Math.max(maxDiff, Math.abs(a.get(i)[j] - b.get(i)[j]));
            }
            System.out.printf("full training: max |weight - committed| = %.3g%n", maxDiff);
            try (HookedTransformer x = trained.model(); HookedTransformer y = committed.model()) {
                double accTrained = Trainer.inductionAccuracy(x, cfg, 99, 256);
                double accCommitted = Trainer.inductionAccuracy(y, cfg, 99, 256);
                assertTrue(accTrained > 0.95 && Math.abs(accTrained - accCommitted) < 0.02,
                    "accuracy " + accTrained + " vs committed " + accCommitted + "; max weight diff " + maxDiff);
            }
        }
    }
}
