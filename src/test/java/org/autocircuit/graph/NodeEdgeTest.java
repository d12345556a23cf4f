package org.autocircuit.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** Edge.name and Edge.patchIdx and record validation. */
class NodeEdgeTest {

    private static final SrcNode RESID_START = new SrcNode("Resid Start", "blocks.0.hook_resid_pre", 0, 0);
    private static final SrcNode A0_2 = new SrcNode("A0.2", "blocks.0.attn.hook_result", 1, 3, OptionalInt.of(2));
    private static final DestNode A1_3_K = new DestNode("A1.3.K", "blocks.1.hook_k_input", 3, OptionalInt.of(3), 0);
    private static final DestNode RESID_END = new DestNode("Resid End", "blocks.1.hook_resid_post", 5,
            OptionalInt.empty(), 0);

    @Test
    void nameIsSrcArrowDestAndIgnoresPosition() {
        assertEquals("A0.2->A1.3.K", new Edge(A0_2, A1_3_K).name());
        assertEquals("A0.2->A1.3.K", new Edge(A0_2, A1_3_K, OptionalInt.of(7)).name());
        assertEquals("A0.2->A1.3.K@7", new Edge(A0_2, A1_3_K, OptionalInt.of(7)).toString());
        assertEquals("A0.2", A0_2.toString());
    }

    @Test
    void patchIdxIsSeqHeadSrcOffset() {
        assertArrayEquals(new int[] {3, 3}, new Edge(A0_2, A1_3_K).patchIdx());
        assertArrayEquals(new int[] {7, 3, 3}, new Edge(A0_2, A1_3_K, OptionalInt.of(7)).patchIdx());
        assertArrayEquals(new int[] {0}, new Edge(RESID_START, RESID_END).patchIdx());
        assertArrayEquals(new int[] {14, 3}, new Edge(A0_2, RESID_END, OptionalInt.of(14)).patchIdx());
        // Unfactorized dests subtract minSrcIdx.
        DestNode residMid1 = new DestNode("Resid Mid 1", "blocks.1.hook_resid_mid", 3, OptionalInt.empty(), 2);
        assertArrayEquals(new int[] {1}, new Edge(A0_2, residMid1).patchIdx());
        Edge e = new Edge(A0_2, A1_3_K);
        int[] first = e.patchIdx();
        first[0] = 42;
        assertArrayEquals(new int[] {3, 3}, e.patchIdx());
        assertNotSame(e.patchIdx(), e.patchIdx());
    }

    @Test
    void recordsAreValues() {
        assertEquals(new Edge(A0_2, A1_3_K, OptionalInt.of(1)), new Edge(A0_2, A1_3_K, OptionalInt.of(1)));
        assertNotEquals(new Edge(A0_2, A1_3_K, OptionalInt.of(1)), new Edge(A0_2, A1_3_K, OptionalInt.of(2)));
        assertEquals(new Edge(A0_2, A1_3_K).hashCode(), new Edge(A0_2, A1_3_K).hashCode());
        Node n = A1_3_K;
        assertEquals(OptionalInt.of(3), n.headIdx());
    }

    @Test
    void validationNamesTheArgument() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new SrcNode("X", "m", 0, -1));
        assertTrue(e.getMessage().contains("srcIdx") && e.getMessage().contains("-1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new DestNode("Y", "m", 1, OptionalInt.empty(), -2));
        assertTrue(e.getMessage().contains("minSrcIdx"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new SrcNode(" ", "m", 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new SrcNode("X", null, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new SrcNode("X", "m", -1, 0));
        assertThrows(IllegalArgumentException.class, () -> new SrcNode("X", "m", 0, 0, null));
        assertThrows(IllegalArgumentException.class, () -> new SrcNode("X", "m", 0, 0, OptionalInt.of(-1)));
        assertThrows(IllegalArgumentException.class, () -> new Edge(null, A1_3_K));
        assertThrows(IllegalArgumentException.class, () -> new Edge(A0_2, A1_3_K, OptionalInt.of(-1)));
        assertThrows(IllegalArgumentException.class, () -> new Edge(A0_2, A1_3_K, null));
        DestNode late = new DestNode("R", "m", 9, OptionalInt.empty(), 5);
        e = assertThrows(IllegalArgumentException.class, () -> new Edge(A0_2, late));
        assertTrue(e.getMessage().contains("minSrcIdx"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new SrcModule("m", 0, 0, 2, false));
        assertThrows(IllegalArgumentException.class, () -> new SrcModule("m", 0, 0, 0, true));
    }
}
