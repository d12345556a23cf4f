package org.autocircuit.distributed;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Tensor;

/**
 * The data-parallel pieces shared by the algorithms and commands: summing edge scores over ranks, running
 * {@code run_circuits} on a shard of the batches and gathering every output, and handing rank 0's checkpoint to the
 * other ranks. With {@link Collective#single()} every method is the plain single-process computation.
 */
public final class DataParallel {
    private DataParallel() {}

    /**
     * The element-wise sum of every rank's scores (one all-reduce of {@code nEdges} values, in double so that the
     * only rounding is the final one to float).
     */
    public static PruneScores allReduceSum(Collective c, PruneScores scores) {
        if (!c.isDistributed()) return scores;
        Map<String, float[]> byModule = scores.byModule();
        int n = 0;
        for (float[] v : byModule.values()) n += v.length;
        double[] flat = new double[n];
        int at = 0;
        for (float[] v : byModule.values()) for (float f : v) flat[at++] = f;
        try (PointerScope scope = new PointerScope()) {
            Tensor t = AbstractTensor.create(flat, n);
            c.allReduceSumInPlace(t);
            t.data_ptr_double().get(flat);
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        at = 0;
        for (Map.Entry<String, float[]> e : byModule.entrySet()) {
            float[] v = new float[e.getValue().length];
            for (int i = 0; i < v.length; i++) v[i] = (float) flat[at++];
            out.put(e.getKey(), v);
        }
        return PruneScores.of(scores.graph(), out);
    }

    /**
     * {@code run_circuits} over all ranks: each rank patches its {@link Collective#shard shard} of {@code batches},
     * then every rank receives every output, in the order one process would have produced them. Dataset-mean
     * ablations average over all batches, so under them every rank runs every batch (correct, not faster).
     */
    public static CircuitOutputs runCircuits(Collective c, PatchableModel model, List<PromptPairBatch> batches,
                                             List<Integer> edgeCounts, PruneScores scores, PatchType patchType,
                                             AblationType ablationType, boolean reverseCleanCorrupt, Progress progress) {
        if (!c.isDistributed() || ablationType.meanOverDataset()) {
            return RunCircuits.run(model, batches, edgeCounts, scores, patchType, ablationType, reverseCleanCorrupt,
                progress);
        }
        List<PromptPairBatch> mine = c.shard(batches);
        CircuitOutputs local = mine.isEmpty() ? CircuitOutputs.builder().build()
            : RunCircuits.run(model, mine, edgeCounts, scores, patchType, ablationType, reverseCleanCorrupt, progress);
        List<byte[]> all = c.allGather(serialize(local));
        // edge count → batch key → output, from every rank
        Map<Integer, Map<Long, HostTensor>> merged = new java.util.TreeMap<>();
        for (byte[] b : all) {
            deserialize(b).forEach((count, outs) -> merged.computeIfAbsent(count, k -> new HashMap<>()).putAll(outs));
        }
        CircuitOutputs.Builder out = CircuitOutputs.builder();
        for (Map.Entry<Integer, Map<Long, HostTensor>> e : merged.entrySet()) {
            for (PromptPairBatch b : batches) {
                HostTensor t = e.getValue().get(b.key());
                if (t == null) {
                    throw new IllegalStateException("no rank returned batch " + b.key() + " at " + e.getKey() + " edges");
                }
                out.put(e.getKey(), b.key(), t);
            }
        }
        return out.build();
    }

    static byte[] serialize(CircuitOutputs outputs) {
        try (ByteArrayOutputStream bytes = new ByteArrayOutputStream(); DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeInt(outputs.edgeCounts().size());
            for (int count : outputs.edgeCounts()) {
                Map<Long, HostTensor> m = outputs.batchOutputs(count);
                out.writeInt(count);
                out.writeInt(m.size());
                for (Map.Entry<Long, HostTensor> e : m.entrySet()) {
                    out.writeLong(e.getKey());
                    HostTensor t = e.getValue();
                    out.writeBoolean(t.dtype() == HostTensor.DType.FLOAT32);
                    long[] shape = t.shape();
                    out.writeInt(shape.length);
                    for (long s : shape) out.writeLong(s);
                    if (t.dtype() == HostTensor.DType.FLOAT32) {
                        for (float f : t.floats()) out.writeFloat(f);
                    } else {
                        for (long l : t.longs()) out.writeLong(l);
                    }
                }
            }
            out.flush();
            return bytes.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Map<Integer, Map<Long, HostTensor>> deserialize(byte[] b) {
        Map<Integer, Map<Long, HostTensor>> result = new LinkedHashMap<>();
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(b))) {
            int counts = in.readInt();
            for (int i = 0; i < counts; i++) {
                int count = in.readInt();
                int n = in.readInt();
                Map<Long, HostTensor> m = new LinkedHashMap<>();
                for (int j = 0; j < n; j++) {
                    long key = in.readLong();
                    boolean isFloat = in.readBoolean();
                    long[] shape = new long[in.readInt()];
                    long numel = 1;
                    for (int d = 0; d < shape.length; d++) numel *= (shape[d] = in.readLong());
                    if (isFloat) {
                        float[] v = new float[Math.toIntExact(numel)];
                        for (int k = 0; k < v.length; k++) v[k] = in.readFloat();
                        m.put(key, HostTensor.ofFloats(v, shape));
                    } else {
                        long[] v = new long[Math.toIntExact(numel)];
                        for (int k = 0; k < v.length; k++) v[k] = in.readLong();
                        m.put(key, HostTensor.ofLongs(v, shape));
                    }
                }
                result.put(count, m);
            }
            return result;
        } catch (IOException e) {
            throw new UncheckedIOException("corrupt run_circuits outputs from another rank", e);
        }
    }

    /**
     * The checkpoint file this rank should use. Rank 0 owns {@code file} (it alone writes it); every other rank gets a
     * private copy of what rank 0 found there at the start (nothing if it did not exist), sent through the group so
     * that no shared file system is needed. The algorithms take the same decisions on every rank, so the copies
     * follow rank 0's file step by step; they are deleted when the JVM exits.
     */
    public static Path checkpointFor(Collective c, Path file) {
        if (file == null || !c.isDistributed()) return file;
        byte[] mine = null;
        if (c.isLeader()) {
            try {
                byte[] content = Files.exists(file) ? Files.readAllBytes(file) : null;
                mine = new byte[content == null ? 1 : content.length + 1];
                mine[0] = (byte) (content == null ? 0 : 1);
                if (content != null) System.arraycopy(content, 0, mine, 1, content.length);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read the checkpoint " + file, e);
            }
        }
        byte[] got = c.broadcastFromLeader(mine);
        if (c.isLeader()) return file;
        try {
            Path dir = Files.createTempDirectory("autocircuit-rank" + c.rank() + "-");
            dir.toFile().deleteOnExit();
            Path copy = dir.resolve(file.getFileName().toString());
            copy.toFile().deleteOnExit();
            if (got.length > 0 && got[0] == 1) Files.write(copy, java.util.Arrays.copyOfRange(got, 1, got.length));
            return copy;
        } catch (IOException e) {
            throw new UncheckedIOException("rank " + c.rank() + " cannot keep its copy of the checkpoint " + file, e);
        }
    }
}
