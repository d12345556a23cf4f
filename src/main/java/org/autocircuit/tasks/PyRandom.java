package org.autocircuit.tasks;

import java.util.List;

/**
 * CPython's {@code random.Random}, bit for bit, for the parts AutoCircuit's loader uses: the
 * Mersenne Twister MT19937 seeded as {@code random.seed(int)} seeds it, {@code getrandbits},
 * {@code _randbelow}, {@code random()} and {@code shuffle} (the loader's shuffle step).
 *
 * <p>Copying CPython exactly is what makes {@code shuffle=true} give the same train/test split as
 * the Python library: {@code new PyRandom(42).shuffle(list)} permutes {@code list} exactly as
 * {@code random.seed(42); random.shuffle(list)} does. Not thread-safe (neither is the Python one
 * without its lock); use one instance per load.
 */
public final class PyRandom {
    private static final int N = 624;
    private static final int M = 397;
    private static final int MATRIX_A = 0x9908b0df;
    private static final int UPPER_MASK = 0x80000000;
    private static final int LOWER_MASK = 0x7fffffff;

    private final int[] mt = new int[N];
    private int mti;

    /**
     * Seeds as {@code random.seed(seed)} does for an int: the absolute value is split into 32-bit
     * words, least significant first, and passed to {@code init_by_array}.
     */
    public PyRandom(long seed) {
        // abs(Long.MIN_VALUE) overflows, but its bit pattern read as unsigned is 2^63, which is the right magnitude.
        long magnitude = seed < 0 ? -seed : seed;
        int lo = (int) magnitude;
        int hi = (int) (magnitude >>> 32);
        initByArray(hi != 0 ? new int[] {lo, hi} : new int[] {lo});
    }

    private void initGenrand(int s) {
        mt[0] = s;
        for (mti = 1; mti < N; mti++) {
            mt[mti] = 1812433253 * (mt[mti - 1] ^ (mt[mti - 1] >>> 30)) + mti;
        }
    }

    private void initByArray(int[] key) {
        initGenrand(19650218);
        int i = 1;
        int j = 0;
        for (int k = Math.max(N, key.length); k > 0; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >>> 30)) * 1664525)) + key[j] + j;   // non-linear
            i++;
            j++;
            if (i >= N) {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if (j >= key.length) j = 0;
        }
        for (int k = N - 1; k > 0; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >>> 30)) * 1566083941)) - i;   // non-linear
            i++;
            if (i >= N) {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x80000000;   // MSB is 1, assuring a non-zero initial array
    }

    /** CPython's {@code genrand_uint32}: the next 32 random bits, as an unsigned value in a long. */
    public long nextUint32() {
        int y;
        if (mti >= N) {
            int kk;
            for (kk = 0; kk < N - M; kk++) {
                y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
                mt[kk] = mt[kk + M] ^ (y >>> 1) ^ ((y & 1) != 0 ? MATRIX_A : 0);
            }
            for (; kk < N - 1; kk++) {
                y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
                mt[kk] = mt[kk + (M - N)] ^ (y >>> 1) ^ ((y & 1) != 0 ? MATRIX_A : 0);
            }
            y = (mt[N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
            mt[N - 1] = mt[M - 1] ^ (y >>> 1) ^ ((y & 1) != 0 ? MATRIX_A : 0);
            mti = 0;
        }
        y = mt[mti++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y & 0xffffffffL;
    }

    /**
     * {@code random.getrandbits(k)} for {@code 0 ≤ k ≤ 64}: 32-bit words are drawn least significant
     * first, and the last word keeps its top {@code k mod 32} bits, as CPython does.
     */
    public long getrandbits(int k) {
        if (k < 0 || k > 64) throw new IllegalArgumentException("getrandbits needs 0 ≤ k ≤ 64, got " + k);
        if (k == 0) return 0;
        if (k <= 32) return nextUint32() >>> (32 - k);
        long low = nextUint32();
        long high = nextUint32() >>> (64 - k);
        return low | (high << 32);
    }

    /** {@code random._randbelow(n)}: uniform in {@code [0, n)} by rejection sampling on bit_length(n) bits. */
    public int randbelow(int n) {
        if (n <= 0) throw new IllegalArgumentException("randbelow needs n > 0, got " + n);
        int k = 32 - Integer.numberOfLeadingZeros(n);   // n.bit_length()
        long r = getrandbits(k);
        while (r >= n) r = getrandbits(k);
        return (int) r;
    }

    /** {@code random.random()}: a double in {@code [0, 1)} with 53 random bits. */
    public double random() {
        long a = nextUint32() >>> 5;
        long b = nextUint32() >>> 6;
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
    }

    /** {@code random.shuffle(list)} in place: Fisher–Yates walking {@code i = n−1 … 1}, {@code j = _randbelow(i+1)}. */
    public <T> void shuffle(List<T> list) {
        for (int i = list.size() - 1; i > 0; i--) {
            int j = randbelow(i + 1);
            T tmp = list.get(i);
            list.set(i, list.get(j));
            list.set(j, tmp);
        }
    }
}
