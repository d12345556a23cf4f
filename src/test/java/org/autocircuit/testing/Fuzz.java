package org.autocircuit.testing;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Seeded mutation fuzzing in plain JUnit: every input is a fixture mutated by a few random edits (byte flips,
 * interesting values, deletions, duplications, insertions, truncations, and number edits that keep JSON valid), fed
 * to a parser that may only accept it or throw an allowed exception, within a time limit. A failure names the seed
 * and the iteration, so it can be replayed.
 */
public final class Fuzz {
    private Fuzz() {}

    /** Inputs per parser in the default run ({@code -Dautocircuit.fuzz.n=N} changes it). */
    public static int defaultCount() {
        return Integer.getInteger("autocircuit.fuzz.n", 2000);
    }

    /** A parser under test. */
    @FunctionalInterface
    public interface Target {
        void parse(byte[] input) throws Exception;
    }

    /**
     * Runs {@code count} mutations of {@code seedInput}.
     *
     * @param allowed exception classes (and their subclasses) a parser may throw on bad input
     * @return how many inputs were rejected with an allowed exception (the rest were accepted)
     */
    @SafeVarargs
    public static int run(String name, byte[] seedInput, long seed, int count, Target target,
                          Class<? extends Throwable>... allowed) throws Exception {
        // The unmutated input must parse, and parsing it first (untimed) loads native libraries and warms up the JIT,
        // so the time limit measures the parser.
        target.parse(seedInput);
        SplittableRandom rnd = new SplittableRandom(seed);
        ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "fuzz-" + name);
            t.setDaemon(true);
            return t;
        });
        int rejected = 0;
        try {
            for (int i = 0; i < count; i++) {
                byte[] input = mutate(seedInput, rnd);
                Future<?> f = worker.submit(() -> {
                    target.parse(input);
                    return null;
                });
                try {
                    f.get(10, TimeUnit.SECONDS);
                } catch (TimeoutException e) {
                    f.cancel(true);
                    fail(name + ": input " + i + " (seed " + seed + ") took more than 10 s: " + preview(input));
                } catch (ExecutionException e) {
                    Throwable c = e.getCause();
                    if (Arrays.stream(allowed).noneMatch(a -> a.isInstance(c))) {
                        throw new AssertionError(name + ": input " + i + " (seed " + seed + ") threw " + c + ": "
                            + preview(input), c);
                    }
                    rejected++;
                }
            }
        } finally {
            worker.shutdownNow();
        }
        return rejected;
    }

    /** One to four random edits of {@code in}. */
    public static byte[] mutate(byte[] in, SplittableRandom rnd) {
        byte[] b = in.clone();
        int edits = 1 + rnd.nextInt(4);
        for (int e = 0; e < edits; e++) {
            if (b.length == 0) b = new byte[] {(byte) rnd.nextInt(256)};
            int at = rnd.nextInt(b.length);
            switch (rnd.nextInt(8)) {
                case 0 -> b[at] ^= (byte) (1 << rnd.nextInt(8));
                case 1 -> b[at] = (byte) new int[] {0, 0xff, 0x7f, 0x80, '"', '{', '[', ']', '-', '9', ' ', '\n'}[rnd.nextInt(12)];
                case 2 -> b = cut(b, at, Math.min(b.length, at + 1 + rnd.nextInt(16)));
                case 3 -> b = insert(b, at, Arrays.copyOfRange(b, at, Math.min(b.length, at + 1 + rnd.nextInt(32))));
                case 4 -> {
                    byte[] junk = new byte[1 + rnd.nextInt(8)];
                    for (int j = 0; j < junk.length; j++) junk[j] = (byte) rnd.nextInt(256);
                    b = insert(b, at, junk);
                }
                case 5 -> b = Arrays.copyOf(b, rnd.nextInt(b.length + 1));
                case 6 -> b = replaceNumber(b, at, rnd);
                default -> {
                    // overwrite 8 bytes with an extreme little-endian integer (the safetensors length field, offsets)
                    long v = new long[] {-1L, Long.MAX_VALUE, Integer.MAX_VALUE, 0, 1L << 32, -8}[rnd.nextInt(6)];
                    for (int j = 0; j < 8 && at + j < b.length; j++) b[at + j] = (byte) (v >>> (8 * j));
                }
            }
        }
        return b;
    }

    /** Replaces the digit run at or after {@code at} with an extreme number, keeping JSON text valid. */
    private static byte[] replaceNumber(byte[] b, int at, SplittableRandom rnd) {
        int s = at;
        while (s < b.length && !Character.isDigit(b[s])) s++;
        if (s == b.length) return b;
        int e = s;
        while (e < b.length && Character.isDigit(b[e])) e++;
        String[] values = {"0", "-1", "2147483647", "2147483648", "9223372036854775807", "99999999999999999999", "1e308",
            "-0", "3.5", "65", "64", "1000000"};
        byte[] v = values[rnd.nextInt(values.length)].getBytes(StandardCharsets.US_ASCII);
        byte[] out = new byte[b.length - (e - s) + v.length];
        System.arraycopy(b, 0, out, 0, s);
        System.arraycopy(v, 0, out, s, v.length);
        System.arraycopy(b, e, out, s + v.length, b.length - e);
        return out;
    }

    private static byte[] cut(byte[] b, int from, int to) {
        byte[] out = new byte[b.length - (to - from)];
        System.arraycopy(b, 0, out, 0, from);
        System.arraycopy(b, to, out, from, b.length - to);
        return out;
    }

    private static byte[] insert(byte[] b, int at, byte[] more) {
        byte[] out = new byte[b.length + more.length];
        System.arraycopy(b, 0, out, 0, at);
        System.arraycopy(more, 0, out, at, more.length);
        System.arraycopy(b, at, out, at + more.length, b.length - at);
        return out;
    }

    private static String preview(byte[] input) {
        String s = new String(input, 0, Math.min(input.length, 300), StandardCharsets.ISO_8859_1);
        return input.length + " bytes: " + s.replaceAll("[^\\x20-\\x7e]", "?");
    }
}
