package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.discovery.LoadedTask;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.OfficialCircuit.Group;
import org.autocircuit.graph.OfficialCircuit.Kind;
import org.autocircuit.graph.OfficialCircuit.Positions;
import org.autocircuit.graph.OfficialCircuit;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The task registry and {@link LoadedTask} on the bundled tiny model. */
class TasksTest {

    private static final TaskPaths HERE = TaskPaths.under(Path.of("."));

    @Test
    void registryHoldsEveryAutoCircuitTask() {
        assertEquals(15, Tasks.ALL.size()); // AutoCircuit's 13, then the two bundled ones
        Task ioi = Tasks.byKey("Indirect Object Identification Token Circuit");
        assertEquals("ioi-token", ioi.key());
        assertEquals(300, ioi.trainSize());
        assertEquals(100, ioi.testSize());
        assertTrue(ioi.tokenCircuit());
        assertEquals("ioi-heads", ioi.officialCircuit());
        assertEquals(ioi, Tasks.byKey("IOI-TOKEN"));
        Task rev = Tasks.byKey("tracr-reverse-token");
        assertEquals(OutputSlice.NOT_FIRST_SEQ, rev.slice());
        assertEquals(121, rev.trainSize());
        assertFalse(Tasks.byKey("sports-token").separateQkv());
        assertTrue(Tasks.byKey("capital-cities-pythia-70m-autoencoder").unsupportedReason().isPresent());
        assertTrue(Tasks.byKey("greater-than-component").unsupportedReason().isEmpty());
        // Every named official circuit and generated dataset exists in the repository.
        for (Task t : Tasks.ALL) {
            t.officialCircuitName().ifPresent(c -> assertTrue(
                Files.isRegularFile(HERE.officialCircuits().resolve(c + ".json")), t.key() + ": " + c));
            if (t.unsupported() == null) assertTrue(Files.isRegularFile(t.datasetPath(HERE)), t.key());
        }
    }

    @Test
    void bundledInductionTaskLoadsWithItsWordTokenizerAndOfficialCircuit() throws Exception {
        try (LoadedTask t = LoadedTask.load(Tasks.byKey("induction-2l"), HERE)) {
            assertEquals(81, t.graph().nEdges());
            assertEquals(64, t.train().nPrompts());
            assertEquals(64, t.test().nPrompts());
            assertEquals(24, t.officialEdges().orElseThrow().size());
            assertEquals("induction-2l", t.officialCircuit().orElseThrow().name());
        }
    }

    @Test
    void unknownKeyListsTheValidOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tasks.byKey("ioi"));
        assertTrue(e.getMessage().contains("ioi-token") && e.getMessage().contains("tracr-reverse-token"), e.getMessage());
    }

    @Test
    void loadsTheBundledTask() throws IOException {
        try (LoadedTask t = LoadedTask.load(Tasks.byKey("ioi-tiny"), HERE)) {
            // Component graph of the 2-layer, 4-head model with separate Q/K/V (the golden graph: 110 edges).
            assertEquals(110, t.graph().nEdges());
            assertEquals(2, t.train().size());
            assertEquals(8, t.train().batchSize());
            assertEquals(16, t.test().nPrompts());
            assertTrue(t.officialEdges().isEmpty());
            // Tail divergence cut the shared "<|endoftext|>When" prefix.
            assertEquals(2, t.train().divergeIdx());
            assertEquals(Map.of("IO", 2), Map.of("IO", t.train().wordIdxs().get("IO")));
        }
    }

    @Test
    void tokenCircuitWithOfficialCircuitAndPrefixCache(@TempDir Path tmp) throws IOException {
        // A hand-written circuit for the tiny model, at the IOI words (shifted for BOS by the loader).
        Path circuits = tmp.resolve("circuits");
        new OfficialCircuit("tiny", "tiny", "", "gpt2-tiny-random", true, true, List.of("IO", "end"), Kind.EDGES,
            List.of(new Group(new Positions.Listed(List.of("end")), true, List.of("A1.0->Resid End", "A0.3->A1.0.Q")),
                new Group(new Positions.Listed(List.of("IO")), true, List.of("Resid Start->A1.0.V"))))
            .write(circuits.resolve("tiny.json"));
        TaskPaths paths = new TaskPaths(HERE.modelsRoot(), HERE.datasetsRoot(), circuits);
        Task task = Tasks.byKey("ioi-tiny").toBuilder().tokenCircuit(true).officialCircuit("tiny").build();
        try (LoadedTask t = LoadedTask.load(task, paths)) {
            // 15 tokens with BOS, minus the 2 cached: 13 positions.
            assertEquals(OptionalInt.of(13), t.graph().seqLen());
            assertEquals(110 * 13, t.graph().nEdges());
            Set<Edge> official = t.officialEdges().orElseThrow();
            assertEquals(Set.of(t.graph().edge("A1.0->Resid End", OptionalInt.of(12)),
                t.graph().edge("A0.3->A1.0.Q", OptionalInt.of(12)),
                t.graph().edge("Resid Start->A1.0.V", OptionalInt.of(0))), official);
            // The prefix cache lets the cut prompts run: logits of the last position for one batch.
            try (PointerScope scope = new PointerScope()) {
                PromptPairBatch b = t.test().batches().get(0);
                Tensor out = t.model().forward(b.clean().toTensor(), null);
                assertEquals(8, out.shape()[0]);
                assertEquals(50257, out.shape()[1]);
            }
        }
    }

    @Test
    void missingModelFolderSaysWhatBelongsThere(@TempDir Path tmp) {
        TaskPaths paths = HERE.withModelsRoot(tmp);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> LoadedTask.load(Tasks.byKey("ioi-component"), paths));
        assertTrue(e.getMessage().contains(tmp.resolve("gpt2").toString()), e.getMessage());
        assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("--models-root"), e.getMessage());
    }

    @Test
    void missingDatasetAndUnsupportedTasksAreNamed(@TempDir Path tmp) throws IOException {
        Task t = Task.generic(Path.of("datasets/models/gpt2-tiny-random"), tmp.resolve("none.json"), 4, 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoadedTask.load(t, HERE));
        assertTrue(e.getMessage().contains("none.json"), e.getMessage());
        UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class,
            () -> LoadedTask.load(Tasks.byKey("tracr-reverse-token"), HERE));
        assertTrue(u.getMessage().contains("tracr"), u.getMessage());
    }

    @Test
    void genericTaskRunsAnyFolderAndFile() throws IOException {
        Task t = Task.generic(Path.of("datasets/models/gpt2-tiny-random"), Path.of("datasets/ioi.json"), 4, 2);
        try (LoadedTask lt = LoadedTask.load(t, HERE)) {
            assertEquals(2, lt.train().size());
            assertEquals(8, lt.test().nPrompts());
            HostTensor clean = lt.train().batches().get(0).clean();
            assertEquals(4, clean.shape()[0]);
        }
    }
}
