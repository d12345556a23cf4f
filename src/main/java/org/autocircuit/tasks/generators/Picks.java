package org.autocircuit.tasks.generators;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

/** Seeded random choices shared by the generators ({@link Random} is fully specified, so seeds reproduce anywhere). */
final class Picks {
    private Picks() {
    }

    static <T> T one(Random r, List<T> from) {
        return from.get(r.nextInt(from.size()));
    }

    /** {@code k} distinct elements, none in {@code exclude}, in the order drawn. */
    static List<String> distinct(Random r, List<String> from, int k, Collection<String> exclude) {
        Set<String> taken = new HashSet<>(exclude);
        if (from.size() - taken.size() < k) {
            throw new IllegalStateException("cannot draw " + k + " distinct words from " + from.size() + " minus " + taken.size());
        }
        List<String> out = new ArrayList<>(k);
        while (out.size() < k) {
            String w = one(r, from);
            if (taken.add(w)) out.add(w);
        }
        return out;
    }

    static void checkN(int n) {
        if (n < 1) throw new IllegalArgumentException("n must be at least 1, got " + n);
    }
}
