package org.autocircuit.model;

import org.autocircuit.util.OwnedTensors;
import org.bytedeco.pytorch.Tensor;

/**
 * A frozen key/value cache of a prompt prefix shared by every prompt of a batch (AutoCircuit's
 * "tail divergence"): forward passes read it and never append to it, so the prefix's keys
 * and values always come from the clean prefix and are never patched.
 *
 * <p>Owns its tensors; {@link #close()} frees them.
 */
public final class KvCache implements AutoCloseable {
    private final OwnedTensors owned = new OwnedTensors();
    private final Tensor[] keys;     // per layer [batch, prefix, nHeads, dHead]
    private final Tensor[] values;   // per layer [batch, prefix, nHeads, dHead]
    private final Tensor prefixMask; // [batch, prefix] int64 or null
    private final long batchSize;
    private final int prefixLength;

    private KvCache(Tensor[] keys, Tensor[] values, Tensor prefixMask, long batchSize, int prefixLength) {
        this.keys = new Tensor[keys.length];
        this.values = new Tensor[values.length];
        for (int i = 0; i < keys.length; i++) {
            this.keys[i] = owned.adopt(keys[i].detach());
            this.values[i] = owned.adopt(values[i].detach());
        }
        this.prefixMask = prefixMask == null ? null : owned.adopt(prefixMask.clone());
        this.batchSize = batchSize;
        this.prefixLength = prefixLength;
    }

    static KvCache of(Tensor[] keys, Tensor[] values, Tensor prefixMask, long batchSize, long prefixLength) {
        return new KvCache(keys, values, prefixMask, batchSize, Math.toIntExact(prefixLength));
    }

    /**
     * The cache of prompts {@code [start, start + count)} of the batch this cache was built for (a data-parallel
     * rank's part of a batch): views of this cache's rows, valid while this cache is open.
     */
    public KvCache rows(int start, int count) {
        if (start < 0 || count < 1 || start + (long) count > batchSize) {
            throw new IndexOutOfBoundsException("rows [" + start + ", " + (start + (long) count) + ") of a KV cache of "
                + batchSize + " prompts");
        }
        try (org.bytedeco.javacpp.PointerScope scope = new org.bytedeco.javacpp.PointerScope()) {
            Tensor[] k = new Tensor[keys.length];
            Tensor[] v = new Tensor[values.length];
            for (int i = 0; i < k.length; i++) {
                k[i] = keys[i].narrow(0, start, count);
                v[i] = values[i].narrow(0, start, count);
            }
            return new KvCache(k, v, prefixMask == null ? null : prefixMask.narrow(0, start, count), count, prefixLength);
        }
    }

    /** Batch size the cache was built for; a forward pass must use the same. */
    public long batchSize() {
        return batchSize;
    }

    public int prefixLength() {
        return prefixLength;
    }

    Tensor keys(int layer) {
        return keys[layer];
    }

    Tensor values(int layer) {
        return values[layer];
    }

    Tensor prefixMask() {
        return prefixMask;
    }

    @Override
    public void close() {
        owned.close();
    }
}
