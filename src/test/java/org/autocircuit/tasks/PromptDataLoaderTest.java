package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPair;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;
import org.junit.jupiter.api.Test;

class PromptDataLoaderTest {
    private static PromptPair micro(float scale) {
        // [seq 3, d 2], as AutoCircuit's test_ablation_activations builds them by hand
        HostTensor clean = HostTensor.ofFloats(new float[] {scale, scale, 2 * scale, 2 * scale, 3 * scale, 3 * scale}, 3, 2);
        HostTensor corrupt = HostTensor.ofFloats(new float[] {scale, scale, -2 * scale, -2 * scale, -3, -3}, 3, 2);
        return new PromptPair(clean, corrupt, HostTensor.ofLongs(new long[] {1}, 1), HostTensor.ofLongs(new long[] {0}, 1));
    }

    @Test
    void handBuiltLoaderBatchesInOrderAndDropsTheRest() {
        List<PromptPair> prompts = List.of(micro(1), micro(2), micro(1), micro(2), micro(5));
        PromptDataLoader loader = PromptDataLoader.of(prompts, 2, OptionalInt.of(3));
        assertEquals(2, loader.size());
        assertEquals(5, loader.nPrompts());
        assertEquals(OptionalInt.of(3), loader.seqLen());
        assertEquals(0, loader.divergeIdx());
        assertTrue(loader.kvPrefix().isEmpty());
        assertTrue(loader.seqLabels().isEmpty());
        assertTrue(loader.wordIdxs().isEmpty());
        PromptPairBatch b = loader.batches().get(0);
        assertArrayEquals(new long[] {2, 3, 2}, b.clean().shape());
        assertEquals(1, b.batchDivergeIdx());
        assertArrayEquals(new long[] {2, 1}, ((Answers.Stacked) b.answers()).values().shape());
        assertNull(b.cleanPadding());
        assertEquals(b.key(), loader.batches().get(1).key(), "identical contents, identical key");
        List<PromptPairBatch> iterated = new ArrayList<>();
        loader.forEach(iterated::add);
        assertEquals(loader.batches(), iterated);
    }

    @Test
    void keysDependOnContentOnly() {
        PromptDataLoader a = PromptDataLoader.of(List.of(micro(1), micro(2)), 2, OptionalInt.empty());
        PromptDataLoader b = PromptDataLoader.of(List.of(micro(1), micro(2)), 2, OptionalInt.of(3));
        PromptDataLoader c = PromptDataLoader.of(List.of(micro(2), micro(1)), 2, OptionalInt.empty());
        assertEquals(a.batches().get(0).key(), b.batches().get(0).key());
        assertNotEquals(a.batches().get(0).key(), c.batches().get(0).key());
    }

    @Test
    void divergeIdxPerBatchIsTheMinimumFirstDifference() {
        HostTensor clean = HostTensor.ofLongs(new long[] {5, 6, 7, 8, 5, 6, 7, 8}, 2, 4);
        assertEquals(0, PromptDataLoader.divergeIdx(clean, clean), "no difference gives 0");
        HostTensor corrupt = HostTensor.ofLongs(new long[] {5, 6, 0, 8, 5, 6, 7, 0}, 2, 4);
        assertEquals(2, PromptDataLoader.divergeIdx(clean, corrupt));
    }

    @Test
    void paddingIsStackedOnlyWhenSomeRowIsPadded() {
        HostTensor ids = HostTensor.ofLongs(new long[] {50256, 50256, 40}, 3);
        HostTensor mask = HostTensor.ofLongs(new long[] {0, 1, 1}, 3);
        HostTensor ans = HostTensor.ofLongs(new long[] {1}, 1);
        PromptPair padded = new PromptPair(ids, ids, ans, ans, mask, mask);
        PromptPair plain = new PromptPair(ids, ids, ans, ans);
        PromptDataLoader l = PromptDataLoader.of(List.of(plain, padded, plain, plain), 2, OptionalInt.empty());
        assertArrayEquals(new long[] {1, 1, 1, 0, 1, 1}, l.batches().get(0).cleanPadding().longs());
        assertNull(l.batches().get(1).cleanPadding());
    }

    @Test
    void rejectsInconsistentInput() {
        assertThrows(IllegalArgumentException.class, () -> PromptDataLoader.of(List.of(micro(1)), 0, OptionalInt.empty()));
        PromptPair shorter = new PromptPair(HostTensor.ofFloats(new float[] {1, 1}, 1, 2), HostTensor.ofFloats(new float[] {1, 1}, 1, 2),
            HostTensor.ofLongs(new long[] {1}, 1), HostTensor.ofLongs(new long[] {0}, 1));
        var e = assertThrows(IllegalArgumentException.class,
            () -> PromptDataLoader.of(List.of(micro(1), shorter), 1, OptionalInt.empty()));
        assertTrue(e.getMessage().contains("prompt 1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PromptDataLoader.of(List.of(micro(1)), 1, OptionalInt.of(4)));
        assertThrows(IllegalArgumentException.class, () -> new PromptDataLoader(List.of(micro(1)), 1, OptionalInt.empty(), 0,
            HostTensor.ofLongs(new long[] {1}, 1, 1), null, List.of(), Map.of()));
        assertThrows(IllegalArgumentException.class, () -> new PromptPair(HostTensor.ofLongs(new long[] {1, 2}, 2),
            HostTensor.ofLongs(new long[] {1}, 1), HostTensor.ofLongs(new long[] {1}, 1), HostTensor.ofLongs(new long[] {1}, 1)));
    }
}
