package org.autocircuit.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Gloo collective on loopback, ranks as threads: the primitives, and every start-up and timeout fault.
 *
 * <p>In the default run again: the JVM aborts (exit 134) that once kept these tests slow-tagged came from native
 * objects of the group freed out of order ({@link GroupLifetimeTest} has the story and guards the fix).
 */
class ProcessGroupCollectiveTest {
    static final Duration SHORT = Duration.ofSeconds(20);

    @Test
    void sumsGathersAndBroadcastsAcrossThreeRanks() throws Exception {
        List<String> got = InProcessRanks.values(InProcessRanks.run(3, SHORT, c -> {
            StringBuilder sb = new StringBuilder();
            try (PointerScope s = new PointerScope()) {
                Tensor t = AbstractTensor.create(new double[] {c.rank(), 1.5, -c.rank() * 10.0}, 3);
                c.allReduceSumInPlace(t);
                double[] v = new double[3];
                t.data_ptr_double().get(v);
                sb.append(v[0]).append(',').append(v[1]).append(',').append(v[2]).append(';');
            }
            // ranks send byte strings of different lengths, the empty one included
            List<byte[]> all = c.allGather(("r" + c.rank()).repeat(c.rank()).getBytes(StandardCharsets.UTF_8));
            for (byte[] b : all) sb.append(new String(b, StandardCharsets.UTF_8)).append('|');
            byte[] fromLeader = c.broadcastFromLeader(c.isLeader() ? new byte[] {7, -1, 0, 42} : null);
            sb.append(';').append(java.util.Arrays.toString(fromLeader));
            c.barrier();
            return sb.toString();
        }));
        for (String s : got) assertEquals("3.0,4.5,-30.0;|r1|r2r2|;[7, -1, 0, 42]", s);
    }

    @Test
    void shardsAreARoundRobinPartition() {
        List<Integer> items = List.of(0, 1, 2, 3, 4, 5, 6);
        Collective r1of3 = new Collective() {
            public int rank() { return 1; }
            public int worldSize() { return 3; }
            public void allReduceSumInPlace(Tensor t) {}
            public List<byte[]> allGather(byte[] mine) { return List.of(mine); }
            public byte[] broadcastFromLeader(byte[] bytes) { return bytes; }
            public void barrier() {}
            public void close() {}
        };
        assertEquals(List.of(1, 4), r1of3.shard(items));
        assertEquals(items, Collective.single().shard(items));
    }

    @Test
    void aRankThatNeverArrivesTimesTheOthersOut() throws Exception {
        Duration timeout = Duration.ofSeconds(3);
        long t0 = System.nanoTime();
        List<Object> results = InProcessRanks.run(2, timeout, c -> {
            if (c.rank() == 1) {
                Thread.sleep(timeout.toMillis() + 3000);    // hangs past the others' timeout
                return "slept";
            }
            try (PointerScope s = new PointerScope()) {
                c.allReduceSumInPlace(AbstractTensor.create(new float[] {1f}, 1));
            }
            return "reduced";
        });
        double seconds = (System.nanoTime() - t0) / 1e9;
        DistributedException e = assertInstanceOf(DistributedException.class, results.get(0));
        assertTrue(e.getMessage().contains("rank 0 of 2: all-reduce of 1 values failed"), e.getMessage());
        assertTrue(e.getMessage().contains("within 3 s"), e.getMessage());
        assertTrue(seconds < 60, "stopped by the timeout, not a hang: " + seconds + " s");
    }

    @Test
    void mismatchedWorldSizesAreAClearError() throws Exception {
        int port = Launcher.freePort("127.0.0.1");
        Duration timeout = Duration.ofSeconds(4);
        Thread leader = new Thread(() -> {
            try {
                ProcessGroupCollective.join(InProcessRanks.env(0, 2, port, timeout)).close();
            } catch (DistributedException expected) {
                // rank 0 waits for a second rank of its world that never forms the group
            }
        });
        leader.start();
        DistributedException e = assertThrows(DistributedException.class,
            () -> ProcessGroupCollective.join(InProcessRanks.env(1, 3, port, timeout)));
        assertTrue(e.getMessage().contains("mismatched world sizes: rank 1 was started with WORLD_SIZE=3 but rank 0 "
            + "with WORLD_SIZE=2"), e.getMessage());
        leader.join(60_000);
        assertTrue(!leader.isAlive(), "rank 0 gave up within its timeout");
    }

    @Test
    void twoProcessesWithOneRankAreAClearError() throws Exception {
        int port = Launcher.freePort("127.0.0.1");
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(3);
        // the group stays up until the duplicate was turned away (rank 0's store must still serve it)
        java.util.concurrent.CountDownLatch refused = new java.util.concurrent.CountDownLatch(1);
        try {
            List<java.util.concurrent.Future<String>> f = new java.util.ArrayList<>();
            for (int rank : new int[] {0, 1, 1}) {
                f.add(pool.submit(() -> {
                    try (Collective c = ProcessGroupCollective.join(InProcessRanks.env(rank, 2, port, SHORT))) {
                        c.barrier();
                        refused.await(30, java.util.concurrent.TimeUnit.SECONDS);
                        return "joined";
                    } catch (DistributedException e) {
                        refused.countDown();
                        return e.getMessage();
                    }
                }));
            }
            List<String> got = new java.util.ArrayList<>();
            for (var x : f) got.add(x.get(60, java.util.concurrent.TimeUnit.SECONDS));
            assertEquals("joined", got.get(0), "rank 0 formed the group with one of the two: " + got);
            assertEquals(1, got.stream().filter("joined"::equals).count() - 1, "one rank 1 joined: " + got);
            assertTrue(got.contains("two processes were started with RANK=1; each rank must be unique in [0, 2)"),
                got.toString());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aPortInUseIsAClearError() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            DistributedException e = assertThrows(DistributedException.class, () -> ProcessGroupCollective.join(
                InProcessRanks.env(0, 2, taken.getLocalPort(), Duration.ofSeconds(3))));
            assertTrue(e.getMessage().startsWith("rank 0 cannot serve the TCP store on 127.0.0.1:" + taken.getLocalPort()
                + " (is the port in use?"), e.getMessage());
        }
    }

    @Test
    void anUnreachableMasterIsAClearErrorWithinTheTimeout() {
        int port = Launcher.freePort("127.0.0.1");   // nobody listens there
        long t0 = System.nanoTime();
        DistributedException e = assertThrows(DistributedException.class,
            () -> ProcessGroupCollective.join(InProcessRanks.env(1, 2, port, Duration.ofSeconds(2))));
        assertTrue(e.getMessage().startsWith("rank 1 cannot reach the master's TCP store at 127.0.0.1:" + port),
            e.getMessage());
        assertTrue((System.nanoTime() - t0) / 1e9 < 60, "gave up by the timeout");
    }

    @Test
    void ranksWithDifferentModelFilesRefuseToStart(@TempDir Path dir) throws Exception {
        Path a = Files.createDirectories(dir.resolve("a"));
        Path b = Files.createDirectories(dir.resolve("b"));
        Files.writeString(a.resolve("model.safetensors"), "weights");
        Files.writeString(b.resolve("model.safetensors"), "weights");
        Path data = Files.writeString(dir.resolve("data.json"), "{}");
        // same content in different folders: fine
        InProcessRanks.values(InProcessRanks.run(2, SHORT, c -> {
            InputFingerprint.checkSameOnAllRanks(c, Map.of("model", c.rank() == 0 ? a : b, "dataset", data));
            return "ok";
        }));
        Files.writeString(b.resolve("model.safetensors"), "weightz");
        List<Object> results = InProcessRanks.run(2, SHORT, c -> {
            InputFingerprint.checkSameOnAllRanks(c, Map.of("model", c.rank() == 0 ? a : b, "dataset", data));
            return "ok";
        });
        for (Object r : results) {
            DistributedException e = assertInstanceOf(DistributedException.class, r);
            assertTrue(e.getMessage().startsWith("the model differs between ranks: rank 0 reads content with SHA-256 "),
                e.getMessage());
        }
    }

    @Test
    void rankZerosCheckpointReachesTheOtherRanksAsPrivateCopies(@TempDir Path dir) throws Exception {
        Path ckpt = Files.write(dir.resolve("run.ckpt"), new byte[] {1, 2, 3, 0, -7});
        Path missing = dir.resolve("none.ckpt");
        List<String> got = InProcessRanks.values(InProcessRanks.run(3, SHORT, c -> {
            Path mine = DataParallel.checkpointFor(c, ckpt);
            Path mineMissing = DataParallel.checkpointFor(c, missing);
            if (c.isLeader()) {
                assertEquals(ckpt, mine, "rank 0 owns the file itself");
                assertEquals(missing, mineMissing);
            } else {
                assertTrue(!mine.equals(ckpt) && !mine.startsWith(dir), "a private copy elsewhere: " + mine);
                assertFalse(Files.exists(mineMissing), "no file where rank 0 had none");
            }
            return java.util.Arrays.toString(Files.readAllBytes(mine));
        }));
        for (String s : got) assertEquals("[1, 2, 3, 0, -7]", s);
    }

    @Test
    void ncclOnACpuBuildIsRefusedBeforeContactingAnyone() {
        org.junit.jupiter.api.Assumptions.assumeFalse(org.bytedeco.pytorch.global.torch.cuda_is_available(),
            "this libtorch sees CUDA: NCCL would be built");
        int port = Launcher.freePort("127.0.0.1");   // nobody listens: a contact attempt would time out instead
        long t0 = System.nanoTime();
        DistributedException e = assertThrows(DistributedException.class, () -> ProcessGroupCollective.join(
            new DistributedEnvironment(1, 2, 0, "127.0.0.1", port, Duration.ofSeconds(30),
                DistributedEnvironment.Backend.NCCL)));
        assertEquals("AUTOCIRCUIT_DIST_BACKEND=nccl needs CUDA, and this libtorch sees no CUDA device (a CPU build, or "
            + "no GPU); use gloo", e.getMessage());
        assertTrue((System.nanoTime() - t0) / 1e9 < 5, "refused at once, not after the 30 s timeout");
    }

    @Test
    void environmentVariablesAreReadAndCheckedByName() {
        assertEquals(DistributedEnvironment.single(), DistributedEnvironment.fromEnvironment(Map.of()));
        DistributedEnvironment e = DistributedEnvironment.fromEnvironment(Map.of("RANK", "2", "WORLD_SIZE", "4",
            "LOCAL_RANK", "0", "MASTER_ADDR", "node7", "MASTER_PORT", "29500", "AUTOCIRCUIT_DIST_TIMEOUT", "12.5"));
        assertEquals(new DistributedEnvironment(2, 4, 0, "node7", 29500, Duration.ofMillis(12500),
            DistributedEnvironment.Backend.GLOO), e);
        DistributedEnvironment slurm = DistributedEnvironment.fromEnvironment(Map.of("SLURM_PROCID", "5",
            "SLURM_NTASKS", "8", "SLURM_LOCALID", "1", "MASTER_ADDR", "n0", "MASTER_PORT", "1234",
            "AUTOCIRCUIT_DIST_BACKEND", "nccl"));
        assertEquals(new DistributedEnvironment(5, 8, 1, "n0", 1234, DistributedEnvironment.DEFAULT_TIMEOUT,
            DistributedEnvironment.Backend.NCCL), slurm);
        assertMessage("RANK must be in [0, WORLD_SIZE = 2), got 2",
            Map.of("RANK", "2", "WORLD_SIZE", "2", "MASTER_PORT", "1"));
        assertMessage("WORLD_SIZE is 2 but MASTER_PORT is not set", Map.of("RANK", "0", "WORLD_SIZE", "2"));
        assertMessage("RANK must be an integer, got 'x'", Map.of("RANK", "x", "WORLD_SIZE", "2", "MASTER_PORT", "1"));
        assertMessage("AUTOCIRCUIT_DIST_BACKEND: 'mpi' is not a backend; valid: gloo, nccl",
            Map.of("RANK", "0", "WORLD_SIZE", "2", "MASTER_PORT", "1", "AUTOCIRCUIT_DIST_BACKEND", "mpi"));
    }

    private static void assertMessage(String expected, Map<String, String> env) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> DistributedEnvironment.fromEnvironment(env));
        assertEquals(expected, e.getMessage());
    }

    @Test
    void launcherSetsTheTorchrunVariables() {
        Launcher.Spec spec = new Launcher.Spec(2, 3, 1, "10.0.0.1", 29400, Duration.ofSeconds(60), Duration.ofSeconds(5),
            1, DistributedEnvironment.Backend.GLOO, List.of(), "cp", "Main", List.of("discover"));
        Map<String, String> env = Launcher.environment(spec, 3, 1, 29400);
        assertEquals("3", env.get("RANK"));
        assertEquals("6", env.get("WORLD_SIZE"));
        assertEquals("1", env.get("LOCAL_RANK"));
        assertEquals("10.0.0.1", env.get("MASTER_ADDR"));
        assertEquals("29400", env.get("MASTER_PORT"));
        assertEquals("1", env.get("OMP_NUM_THREADS"));
        // what the launcher sets, a worker reads back
        DistributedEnvironment read = DistributedEnvironment.fromEnvironment(env);
        assertEquals(new DistributedEnvironment(3, 6, 1, "10.0.0.1", 29400, Duration.ofSeconds(60),
            DistributedEnvironment.Backend.GLOO), read);
        assertArrayEquals(new Object[] {"with --nnodes > 1, --master HOST:PORT must name rank 0's machine and port"},
            new Object[] {assertThrows(IllegalArgumentException.class, () -> new Launcher.Spec(2, 2, 0, "h", 0,
                Duration.ofSeconds(1), Duration.ofSeconds(1), 0, DistributedEnvironment.Backend.GLOO, List.of(), "cp",
                "Main", List.of("x"))).getMessage()});
    }
}
