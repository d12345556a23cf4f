package org.autocircuit.distributed;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.ByteVector;
import org.bytedeco.pytorch.TCPStoreOptions;

/**
 * A child JVM for {@link GroupLifetimeTest}: forms and closes Gloo groups the ways the tests and commands do (healthy
 * groups of 2 ranks as threads, a join that fails after the group store exists, a group one of whose ranks timed out),
 * then lets the garbage collector run and reuses freed native memory. Run under glibc's heap checks
 * ({@code MALLOC_CHECK_=3}, no tcache), a native object freed in the wrong order, or left to the collector while
 * something it points into is already freed, aborts this JVM (exit 134) instead of corrupting the heap silently.
 * Prints "survived" and exits 0 otherwise. The argument picks one case ({@code healthy}, {@code failed-join},
 * {@code timeout}) or {@code all} (the default).
 */
public final class GroupLifetimeWorker {
    private GroupLifetimeWorker() {}

    public static void main(String[] args) throws Exception {
        Duration timeout = Duration.ofSeconds(2);
        String only = args.length > 0 ? args[0] : "all";
        for (int round = 0; round < 2 && (only.equals("all") || only.equals("healthy")); round++) {
            // healthy groups: collectives, then close (which meets at a barrier)
            InProcessRanks.values(InProcessRanks.run(2, Duration.ofSeconds(20), c -> {
                try (PointerScope s = new PointerScope()) {
                    c.allReduceSumInPlace(AbstractTensor.create(new float[] {c.rank()}, 1));
                }
                c.allGather(new byte[] {(byte) c.rank()});
                c.broadcastFromLeader(new byte[] {1});
                c.barrier();
                return "ok";
            }));
        }
        // a join that fails once the group store exists: rank 0 waits for a rank 1 that never comes
        int port = Launcher.freePort("127.0.0.1");
        if (only.equals("all") || only.equals("failed-join")) try {
            ProcessGroupCollective.join(InProcessRanks.env(0, 2, port, timeout)).close();
            throw new AssertionError("rank 0 formed a group of 2 alone");
        } catch (DistributedException expected) {
            System.out.println("failed join: " + expected.getMessage().lines().findFirst().orElse(""));
        }
        // a group whose rank 1 does not arrive at a collective: rank 0 times out and closes a broken group
        List<Object> r = !(only.equals("all") || only.equals("timeout")) ? List.of() : InProcessRanks.run(2, timeout, c -> {
            if (c.rank() == 1) {
                Thread.sleep(timeout.toMillis() + 1500);
                return "late";
            }
            try (PointerScope s = new PointerScope()) {
                c.allReduceSumInPlace(AbstractTensor.create(new float[] {1f}, 1));
            }
            return "reduced";
        });
        if (!r.isEmpty()) System.out.println("timed-out group: " + (r.get(0) instanceof DistributedException));
        // what the collector frees now is freed after the stores; then reuse the freed memory
        for (int i = 0; i < 10; i++) {
            System.gc();
            Thread.sleep(100);
        }
        List<byte[]> junk = new ArrayList<>();
        for (int i = 0; i < 3000; i++) {
            try (PointerScope s = new PointerScope()) {
                new TCPStoreOptions();
                new ByteVector(64 + i % 512);
            }
            if (i % 100 == 0) junk.add(new byte[4096]);
        }
        System.gc();
        Thread.sleep(300);
        System.out.println("survived");
    }
}
