package org.autocircuit.distributed;

import java.util.ArrayList;
import java.util.List;
import org.bytedeco.pytorch.Tensor;

/**
 * The communication a data-parallel algorithm needs, and nothing more: who am I, how many of us, sum a tensor
 * across all of us, gather a few bytes from everyone, send bytes from the leader to everyone.
 *
 * <p>Algorithms take one of these and shard their prompt batches by {@link #shard}; with {@link #single()} (one
 * process) every method is a no-op or the identity, so the single-process path does the same work as before.
 * {@link ProcessGroupCollective} is the torch.distributed implementation (Gloo on CPU, NCCL on CUDA).
 *
 * <p>Every rank must make the same calls in the same order (as with torch.distributed); a call that one rank skips
 * makes the others wait until the group's timeout and then fail with a {@link DistributedException}.
 */
public interface Collective extends AutoCloseable {

    /** This process's rank, 0 ≤ rank &lt; {@link #worldSize()}. */
    int rank();

    int worldSize();

    /** Rank 0: the one process that writes results, reports, checkpoints and standard output. */
    default boolean isLeader() {
        return rank() == 0;
    }

    default boolean isDistributed() {
        return worldSize() > 1;
    }

    /** Sums {@code t} element-wise across all ranks, in place (a CPU tensor; float, double or int64). */
    void allReduceSumInPlace(Tensor t);

    /** Every rank's {@code mine}, indexed by rank (same on every rank). */
    List<byte[]> allGather(byte[] mine);

    /** The leader's {@code bytes} on every rank (other ranks' argument is ignored and may be null). */
    byte[] broadcastFromLeader(byte[] bytes);

    /** Waits until every rank has reached this call. */
    void barrier();

    /**
     * This rank's share of {@code items}: items {@code rank, rank + world, rank + 2·world, ...} (round-robin, so the
     * shares differ by at most one item and keep the input order). Every item is in exactly one rank's share.
     */
    default <T> List<T> shard(List<T> items) {
        if (worldSize() == 1) return items;
        List<T> mine = new ArrayList<>();
        for (int i = rank(); i < items.size(); i += worldSize()) mine.add(items.get(i));
        return mine;
    }

    /**
     * This rank's contiguous part of {@code n} rows (the prompts of one batch): {@code {start, count}}, the first
     * {@code n % worldSize} ranks taking one row more, so rank 0 always has a row when {@code n ≥ 1} and the parts
     * tile {@code [0, n)} in rank order.
     */
    default int[] rowRange(int n) {
        int w = worldSize(), r = rank(), q = n / w, rem = n % w;
        return new int[] {r * q + Math.min(r, rem), q + (r < rem ? 1 : 0)};
    }

    @Override
    void close();

    /** The single-process collective: rank 0 of 1; sums and gathers return their input. */
    static Collective single() {
        return SingleProcess.INSTANCE;
    }

    /** One process: nothing to communicate. */
    final class SingleProcess implements Collective {
        static final SingleProcess INSTANCE = new SingleProcess();

        private SingleProcess() {}

        @Override public int rank() { return 0; }

        @Override public int worldSize() { return 1; }

        @Override public void allReduceSumInPlace(Tensor t) {}

        @Override public List<byte[]> allGather(byte[] mine) { return List.of(mine); }

        @Override public byte[] broadcastFromLeader(byte[] bytes) { return bytes; }

        @Override public void barrier() {}

        @Override public void close() {}

        @Override public String toString() { return "single process"; }
    }
}
