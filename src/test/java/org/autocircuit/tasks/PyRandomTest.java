package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Expected values were printed by CPython 3.11.7 ({@code random.seed(s); ...}). */
class PyRandomTest {
    private static List<Integer> shuffled(long seed, int n) {
        List<Integer> l = new ArrayList<>(IntStream.range(0, n).boxed().toList());
        new PyRandom(seed).shuffle(l);
        return l;
    }

    @Test
    void shuffleMatchesCPython() {
        assertEquals(List.of(7, 3, 2, 8, 5, 6, 9, 4, 0, 1), shuffled(42, 10));
        assertEquals(List.of(7, 8, 1, 5, 3, 4, 2, 0, 9, 6), shuffled(0, 10));
        assertEquals(List.of(6, 8, 9, 7, 5, 3, 0, 4, 1, 2), shuffled(1, 10));
        // a seed wider than 32 bits is split into two key words
        assertEquals(List.of(1, 2, 3, 6, 7, 0, 5, 4, 9, 8), shuffled((1L << 40) + 5, 10));
        assertEquals(List.of(26, 5, 10, 15, 25, 11, 22, 6, 19, 12, 16, 9, 28, 14, 24, 20, 30, 1, 13, 18, 2, 17, 21, 3,
            29, 4, 27, 31, 8, 23, 0, 7), shuffled(42, 32));
    }

    @Test
    void longShuffleMatchesCPython() {
        // random.seed(42); l = list(range(1000)); random.shuffle(l)
        List<Integer> l = shuffled(42, 1000);
        assertEquals(List.of(776, 507, 895, 922, 33, 483, 85, 750, 354, 523), l.subList(0, 10));
        long weighted = 0;
        for (int i = 0; i < l.size(); i++) weighted += (long) i * l.get(i);
        assertEquals(250181598L, weighted);
    }

    @Test
    void rawDrawsMatchCPython() {
        PyRandom r = new PyRandom(42);
        assertEquals(2746317213L, r.getrandbits(32));
        assertEquals(478163327L, r.getrandbits(32));
        assertEquals(107420369L, r.getrandbits(32));
        assertEquals(5073395517033431291L, r.getrandbits(64));
        assertEquals(0.24489185380347622, r.random());
    }

    @Test
    void negativeSeedIsItsAbsoluteValue() {
        assertEquals(shuffled(42, 50), shuffled(-42, 50));
        assertNotEquals(shuffled(42, 50), shuffled(43, 50));
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> new PyRandom(1).randbelow(0));
        assertThrows(IllegalArgumentException.class, () -> new PyRandom(1).getrandbits(65));
    }
}
