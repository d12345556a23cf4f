package org.autocircuit.distributed;

import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.javacpp.SizeTPointer;
import org.bytedeco.javacpp.chrono.Milliseconds;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.AllreduceOptions;
import org.bytedeco.pytorch.Backend;
import org.bytedeco.pytorch.BroadcastOptions;
import org.bytedeco.pytorch.ByteVector;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.GlooDeviceVector;
import org.bytedeco.pytorch.PrefixStore;
import org.bytedeco.pytorch.ProcessGroupGloo;
import org.bytedeco.pytorch.ReduceOp;
import org.bytedeco.pytorch.TCPStore;
import org.bytedeco.pytorch.TCPStoreOptions;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.Work;
import org.bytedeco.pytorch.global.torch;

/**
 * A {@link Collective} on torch.distributed's C++ engine through the JavaCPP presets: a {@link TCPStore} served by
 * rank 0 for the rendezvous, a {@link PrefixStore} per group, and a {@link ProcessGroupGloo} (CPU) or
 * {@code nccl.ProcessGroupNCCL} (CUDA) for the collectives.
 *
 * <p>Joining checks, before any model work, that every rank was started with the same {@code WORLD_SIZE} and that no
 * two processes claim the same rank. Every collective waits at most the environment's timeout: a rank that died
 * makes the others fail at their next collective ("connection closed by peer"), a rank that hangs makes them fail
 * when the timeout runs out; either way as a {@link DistributedException} naming this rank and the operation.
 */
public final class ProcessGroupCollective implements Collective {
    private static final String KEY = "autocircuit/";

    private final DistributedEnvironment env;
    private final TCPStore store;
    private final PrefixStore groupStore;
    private final Backend group;
    private final Device device;    // where NCCL wants its tensors; null for Gloo (CPU)
    private boolean closed;
    private boolean failed;     // a collective failed: the group is broken, close() must not wait for anyone

    private ProcessGroupCollective(DistributedEnvironment env, TCPStore store, PrefixStore groupStore, Backend group,
                                   Device device) {
        this.env = env;
        this.store = store;
        this.groupStore = groupStore;
        this.group = group;
        this.device = device;
    }

    /** The collective of this process's environment: {@link Collective#single()} when it names one process. */
    public static Collective fromEnvironment() {
        DistributedEnvironment env = DistributedEnvironment.fromEnvironment();
        return env.isDistributed() ? join(env) : Collective.single();
    }

    /**
     * Joins the group: connects to (rank 0: serves) the TCP store, checks the world size, builds the process group.
     *
     * @throws DistributedException when the port is in use, the master cannot be reached within the timeout, the
     *                              ranks disagree about the world size, or two processes claim one rank
     */
    public static ProcessGroupCollective join(DistributedEnvironment env) {
        if (!env.isDistributed()) throw new IllegalArgumentException("a group of one process needs no process group");
        if (env.backend() == DistributedEnvironment.Backend.NCCL) requireCuda(env.localRank());
        String where = env.masterAddr() + ":" + env.masterPort();
        TCPStore store = null;
        PrefixStore groupStore = null;
        Backend group = null;
        // Temporaries (options, durations, device lists) live in this scope; the store, the group store and the group
        // are owned by the collective and closed by it in order (see close()), whatever scope the caller has open.
        try (PointerScope temporaries = new PointerScope()) {
            Milliseconds timeout = new Milliseconds(env.timeout().toMillis());
            try {
                TCPStoreOptions o = new TCPStoreOptions();
                o.port((short) env.masterPort());
                o.isServer(env.rank() == 0);
                o.numWorkers(new SizeTPointer(1).put(env.worldSize()));
                o.waitWorkers(false);      // the rendezvous below waits, with a message of its own
                o.timeout(timeout);
                o.useLibUV(false);
                store = owned(new TCPStore(env.masterAddr(), o));
            } catch (RuntimeException e) {
                String what = env.rank() == 0
                    ? "rank 0 cannot serve the TCP store on " + where + " (is the port in use? choose another MASTER_PORT)"
                    : "rank " + env.rank() + " cannot reach the master's TCP store at " + where + " within "
                        + env.timeout().toSeconds() + " s (is rank 0 running, and MASTER_ADDR/MASTER_PORT right?)";
                throw new DistributedException(what + ": " + DistributedException.nativeMessage(e), e);
            }
            rendezvous(env, store);
            groupStore = owned(new PrefixStore(KEY + "group", store));
            Device device = null;
            if (env.backend() == DistributedEnvironment.Backend.NCCL) {
                device = owned(new Device(torch.DeviceType.CUDA, (byte) env.localRank()));
                org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options no = org.bytedeco.pytorch.nccl.ProcessGroupNCCL.Options.create();
                no.timeout(timeout);
                group = owned(new org.bytedeco.pytorch.nccl.ProcessGroupNCCL(groupStore, env.rank(), env.worldSize(), no));
            } else {
                ProcessGroupGloo.Options go = ProcessGroupGloo.Options.create(timeout);
                go.devices(new GlooDeviceVector(glooDevice(env.masterAddr())));
                group = owned(new ProcessGroupGloo(groupStore, env.rank(), env.worldSize(), go));
            }
            return new ProcessGroupCollective(env, store, groupStore, group, device);
        } catch (DistributedException e) {
            release(group, groupStore, store);
            throw e;
        } catch (RuntimeException e) {
            release(group, groupStore, store);
            throw new DistributedException("rank " + env.rank() + " could not form the process group of "
                + env.worldSize() + " ranks through " + where + " within " + env.timeout().toSeconds() + " s: "
                + DistributedException.nativeMessage(e), e);
        }
    }

    /**
     * NCCL needs CUDA tensors, one GPU per rank ({@code LOCAL_RANK} picks it); on a CPU build of libtorch (this
     * project's default) it is refused before anything is contacted, with the way out.
     */
    static void requireCuda(int localRank) {
        if (!torch.cuda_is_available()) {
            throw new DistributedException("AUTOCIRCUIT_DIST_BACKEND=nccl needs CUDA, and this libtorch sees no "
                + "CUDA device (a CPU build, or no GPU); use gloo");
        }
        int devices = torch.cuda_device_count();
        if (localRank >= devices) {
            throw new DistributedException("LOCAL_RANK=" + localRank + " picks cuda:" + localRank + ", but this machine "
                + "has " + devices + " CUDA device(s); start at most " + devices + " NCCL ranks per machine");
        }
    }

    /**
     * Keeps {@code p} alive until this class closes it: a scope the caller (or {@link #join}) has open must not free
     * the store while the group still points into it.
     */
    private static <P extends org.bytedeco.javacpp.Pointer> P owned(P p) {
        p.retainReference();
        return p;
    }

    /**
     * Frees the group, then the group store, then the TCP store: each holds a pointer into the next. The presets
     * free a store that Java created when Java closes it, whatever C++ still refers to it, so this order is the
     * only safe one; nothing of a group may be left to the garbage collector (docs/distributed.md, "Native
     * lifetimes").
     */
    private static void release(Backend group, PrefixStore groupStore, TCPStore store) {
        if (group != null) group.close();
        if (groupStore != null) groupStore.close();
        if (store != null) store.close();
    }

    /**
     * Gloo's network interface. On a loopback master every rank is on this machine, so loopback; otherwise the
     * interface named by {@code GLOO_SOCKET_IFNAME}, or the one this machine's host name resolves to.
     */
    private static org.bytedeco.pytorch.gloo.Device glooDevice(String masterAddr) {
        String ifname = System.getenv("GLOO_SOCKET_IFNAME");
        if (ifname != null && !ifname.isBlank()) return ProcessGroupGloo.createDeviceForInterface(ifname.trim());
        boolean loopback;
        try {
            loopback = InetAddress.getByName(masterAddr).isLoopbackAddress();
        } catch (java.net.UnknownHostException e) {
            throw new DistributedException("MASTER_ADDR '" + masterAddr + "' is not a known host name");
        }
        return loopback ? ProcessGroupGloo.createDeviceForHostname("127.0.0.1") : ProcessGroupGloo.createDefaultDevice();
    }

    /** Every rank's world size must be rank 0's; every rank must be claimed exactly once. */
    private static void rendezvous(DistributedEnvironment env, TCPStore store) {
        long claims = store.add(KEY + "rank/" + env.rank(), 1);
        if (claims > 1) {
            throw new DistributedException("two processes were started with RANK=" + env.rank() + "; each rank must be "
                + "unique in [0, " + env.worldSize() + ")");
        }
        try (ByteVector mine = new ByteVector(Integer.toString(env.worldSize()).getBytes())) {
            store.set(KEY + "world/" + env.rank(), mine);
        }
        int leaderWorld;
        try (ByteVector leaders = store.get(KEY + "world/0")) {     // waits up to the timeout for rank 0
            leaderWorld = Integer.parseInt(new String(leaders.get()));
        } catch (RuntimeException e) {
            throw new DistributedException("rank " + env.rank() + " waited " + env.timeout().toSeconds()
                + " s for rank 0's world size: " + DistributedException.nativeMessage(e), e);
        }
        if (leaderWorld != env.worldSize()) {
            throw new DistributedException("mismatched world sizes: rank " + env.rank() + " was started with WORLD_SIZE="
                + env.worldSize() + " but rank 0 with WORLD_SIZE=" + leaderWorld);
        }
        if (env.rank() == 0) {
            // rank 0 also sees a rank that joined with a larger world size before the others give up on it
            long joined = store.add(KEY + "joined", 1);
            if (joined > env.worldSize()) {
                throw new DistributedException("more than WORLD_SIZE=" + env.worldSize() + " processes joined");
            }
        } else {
            store.add(KEY + "joined", 1);
        }
    }

    @Override
    public int rank() {
        return env.rank();
    }

    @Override
    public int worldSize() {
        return env.worldSize();
    }

    public DistributedEnvironment environment() {
        return env;
    }

    @Override
    public void allReduceSumInPlace(Tensor t) {
        ensureOpen();
        if (!t.is_contiguous()) throw new IllegalArgumentException("all-reduce needs a contiguous tensor");
        try (PointerScope scope = new PointerScope()) {
            Tensor onDevice = device == null ? t : t.to(device, t.scalar_type());
            AllreduceOptions opts = new AllreduceOptions();
            opts.reduceOp(new ReduceOp(ReduceOp.RedOpType.SUM));
            await(group.allreduce(new TensorVector(onDevice), opts), "all-reduce of " + t.numel() + " values");
            if (device != null) t.copy_(onDevice.cpu());
        }
    }

    @Override
    public List<byte[]> allGather(byte[] mine) {
        ensureOpen();
        int world = env.worldSize();
        try (PointerScope scope = new PointerScope()) {
            // lengths first (each rank fills its own slot; the sum is every rank's length)
            long[] lens = new long[world];
            lens[env.rank()] = mine.length;
            Tensor lengths = AbstractTensor.create(lens, world);
            allReduceSumInPlace(lengths);
            lengths.data_ptr_long().get(lens);
            long total = 0, offset = 0;
            for (int r = 0; r < world; r++) {
                if (r < env.rank()) offset += lens[r];
                total += lens[r];
            }
            if (total > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("all-gather of " + total + " bytes is too large");
            // then the bytes: zeros except this rank's slot, so the sum is every rank's bytes, exactly
            byte[] all = new byte[(int) total];
            System.arraycopy(mine, 0, all, (int) offset, mine.length);
            if (total > 0) {
                Tensor buf = AbstractTensor.create(all, total);
                allReduceSumInPlace(buf);
                buf.data_ptr_byte().get(all);
            }
            List<byte[]> out = new ArrayList<>(world);
            int at = 0;
            for (int r = 0; r < world; r++) {
                byte[] b = new byte[(int) lens[r]];
                System.arraycopy(all, at, b, 0, b.length);
                at += b.length;
                out.add(b);
            }
            return out;
        }
    }

    @Override
    public byte[] broadcastFromLeader(byte[] bytes) {
        ensureOpen();
        try (PointerScope scope = new PointerScope()) {
            long[] len = {isLeader() ? bytes.length : 0};
            Tensor lt = AbstractTensor.create(len, 1);
            broadcast(lt);
            lt.data_ptr_long().get(len);
            byte[] out = isLeader() ? bytes.clone() : new byte[(int) len[0]];
            if (len[0] > 0) {
                Tensor bt = AbstractTensor.create(out, len[0]);
                broadcast(bt);
                bt.data_ptr_byte().get(out);
            }
            return out;
        }
    }

    private void broadcast(Tensor t) {
        Tensor onDevice = device == null ? t : t.to(device, t.scalar_type());
        BroadcastOptions opts = new BroadcastOptions();
        opts.rootRank(0);
        await(group.broadcast(new TensorVector(onDevice), opts), "broadcast from rank 0");
        if (device != null) t.copy_(onDevice.cpu());
    }

    @Override
    public void barrier() {
        ensureOpen();
        await(group.barrier(), "barrier");
    }

    private void await(Work work, String what) {
        try {
            work._wait();
        } catch (RuntimeException e) {
            failed = true;
            throw new DistributedException("rank " + env.rank() + " of " + env.worldSize() + ": " + what + " failed: "
                + DistributedException.nativeMessage(e) + " (another rank died, or did not reach the same step within "
                + env.timeout().toSeconds() + " s; see its log)", e);
        } finally {
            work.close();
        }
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("the process group is closed");
    }

    /**
     * Leaves the group. Rank 0 serves the store, so every rank first meets at a barrier: rank 0 does not shut the
     * store down while another rank still needs it. A failed barrier (a rank already gone) is not an error here.
     *
     * <p>Native lifetimes: a c10d {@code Work} keeps its process group alive, and the group points into the group
     * store, which points into the TCP store. So every {@code Work} is closed as soon as it is waited for (a Work
     * left to the garbage collector made the group outlive this method, and its late destruction wrote into the
     * stores freed here: heap corruption and a JVM abort long after), and the rest is freed group first.
     */
    @Override
    public void close() {
        if (closed) return;
        boolean healthy = !failed;
        if (healthy) {
            try (PointerScope scope = new PointerScope()) {
                Work w = group.barrier();
                try {
                    w._wait();
                } finally {
                    w.close();
                }
            } catch (RuntimeException e) {
                healthy = false;    // a rank that already failed: nothing left to synchronise with
            }
        }
        closed = true;
        group.close();
        groupStore.close();
        if (device != null) device.close();
        // rank 0 serves the store: it shuts the server down only after every other rank has let go of its group
        // (bounded: a rank that is gone never checks out)
        try {
            if (!healthy) {
                // a broken group: a dead rank never checks out, so rank 0 must not wait for it
            } else if (env.rank() != 0) {
                store.add(KEY + "closed", 1);
            } else {
                long deadline = System.nanoTime() + Math.min(env.timeout().toNanos(), 30_000_000_000L);
                while (store.add(KEY + "closed", 0) < env.worldSize() - 1 && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
            }
        } catch (RuntimeException ignored) {
            // the store's server or a peer is already gone: nothing left to wait for
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        store.close();
    }

    @Override
    public String toString() {
        return env.backend().name().toLowerCase(java.util.Locale.ROOT) + " rank " + env.rank() + " of " + env.worldSize()
            + " via " + env.masterAddr() + ":" + env.masterPort();
    }
}
