package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.autocircuit.model.OutputSlice;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.Test;

/** {@link PatchableModel#derived}: made once per kind, returned after, closed with the model. */
class DerivedValuesTest {
    /** A value that counts how often it was made and closed. */
    static final class Counted implements AutoCloseable {
        static int made;
        int closed;

        Counted() {
            made++;
        }

        @Override
        public void close() {
            closed++;
        }
    }

    @Test
    void madeOnceAndClosedWithTheModel() {
        Counted.made = 0;
        Counted first;
        PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
            Fixtures.kernels("reference"));
        try (model) {
            first = model.derived(Counted.class, Counted::new);
            assertSame(first, model.derived(Counted.class, Counted::new));
            assertEquals(1, Counted.made, "made again for the same kind");
            assertEquals(0, first.closed);
        }
        assertEquals(1, first.closed, "closing the model closes what was derived from it, once");
        assertThrows(IllegalStateException.class, () -> model.derived(Counted.class, Counted::new));
    }
}
