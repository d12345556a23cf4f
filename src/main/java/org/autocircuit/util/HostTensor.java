package org.autocircuit.util;

import java.util.Arrays;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * An immutable tensor held on the Java heap: either float32 or int64 values with a shape.
 *
 * <p>Prompts, answers and prune scores are small, so they live here as plain values (comparable,
 * hashable, serialisable, free of any native scope). {@link #toTensor()} makes a libtorch copy in
 * the caller's current {@code PointerScope} when a computation needs one.
 */
public final class HostTensor {
    /** The element type. */
    public enum DType { FLOAT32, INT64 }

    private final DType dtype;
    private final long[] shape;
    private final float[] floats;
    private final long[] longs;

    private HostTensor(DType dtype, long[] shape, float[] floats, long[] longs) {
        long n = numel(shape);
        long have = dtype == DType.FLOAT32 ? floats.length : longs.length;
        if (n != have) {
            throw new IllegalArgumentException(
                "shape " + Arrays.toString(shape) + " needs " + n + " values, got " + have);
        }
        this.dtype = dtype;
        this.shape = shape.clone();
        this.floats = floats;
        this.longs = longs;
    }

    public static HostTensor ofFloats(float[] values, long... shape) {
        return new HostTensor(DType.FLOAT32, shape, values.clone(), null);
    }

    public static HostTensor ofLongs(long[] values, long... shape) {
        return new HostTensor(DType.INT64, shape, null, values.clone());
    }

    /** Copies a libtorch tensor (any float dtype → float32, any integer dtype → int64) to the heap. */
    public static HostTensor of(Tensor t) {
        long[] shape = t.shape();
        try (var scope = new org.bytedeco.javacpp.PointerScope()) {
            Tensor cpu = t.detach().cpu().contiguous();
            if (cpu.is_floating_point()) {
                Tensor f = cpu.toType(torch.ScalarType.Float);
                float[] data = new float[(int) f.numel()];
                // an empty tensor may have no storage at all (a null data pointer): nothing to copy
                if (data.length > 0) f.data_ptr_float().get(data);
                return new HostTensor(DType.FLOAT32, shape, data, null);
            }
            Tensor l = cpu.toType(torch.ScalarType.Long);
            long[] data = new long[(int) l.numel()];
            if (data.length > 0) l.data_ptr_long().get(data);
            return new HostTensor(DType.INT64, shape, null, data);
        }
    }

    /** A new libtorch tensor (CPU) with these values; owned by the caller's current scope. */
    public Tensor toTensor() {
        return dtype == DType.FLOAT32
            ? AbstractTensor.create(floats, shape)
            : AbstractTensor.create(longs, shape);
    }

    public DType dtype() { return dtype; }

    public long[] shape() { return shape.clone(); }

    public int dim() { return shape.length; }

    public long size(int dim) { return shape[dim < 0 ? shape.length + dim : dim]; }

    public long numel() { return numel(shape); }

    /** The values as float32 (a copy; int64 values are converted). */
    public float[] floats() {
        if (dtype == DType.FLOAT32) return floats.clone();
        float[] out = new float[longs.length];
        for (int i = 0; i < out.length; i++) out[i] = longs[i];
        return out;
    }

    /** The values as int64 (a copy); only for INT64 tensors. */
    public long[] longs() {
        if (dtype != DType.INT64) throw new IllegalStateException("HostTensor is " + dtype + ", not INT64");
        return longs.clone();
    }

    /** Row {@code i} along dimension 0, as a new HostTensor of rank dim()-1. */
    public HostTensor row(int i) {
        if (shape.length == 0) throw new IllegalStateException("a scalar has no rows");
        if (i < 0 || i >= shape[0]) throw new IndexOutOfBoundsException("row " + i + " of " + shape[0]);
        long[] sub = Arrays.copyOfRange(shape, 1, shape.length);
        int n = (int) numel(sub);
        return dtype == DType.FLOAT32
            ? new HostTensor(dtype, sub, Arrays.copyOfRange(floats, i * n, (i + 1) * n), null)
            : new HostTensor(dtype, sub, null, Arrays.copyOfRange(longs, i * n, (i + 1) * n));
    }

    /** Rows {@code [start, start + count)} along dimension 0, as a new HostTensor of the same rank. */
    public HostTensor rows(int start, int count) {
        if (shape.length == 0) throw new IllegalStateException("a scalar has no rows");
        if (start < 0 || count < 0 || start + (long) count > shape[0]) {
            throw new IndexOutOfBoundsException("rows [" + start + ", " + (start + (long) count) + ") of " + shape[0]);
        }
        long[] sub = shape.clone();
        sub[0] = count;
        int n = (int) numel(Arrays.copyOfRange(shape, 1, shape.length));
        return dtype == DType.FLOAT32
            ? new HostTensor(dtype, sub, Arrays.copyOfRange(floats, start * n, (start + count) * n), null)
            : new HostTensor(dtype, sub, null, Arrays.copyOfRange(longs, start * n, (start + count) * n));
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long s : shape) {
            if (s < 0) throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            n *= s;
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof HostTensor h && h.dtype == dtype && Arrays.equals(h.shape, shape)
            && Arrays.equals(h.floats, floats) && Arrays.equals(h.longs, longs);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(shape) + (dtype == DType.FLOAT32 ? Arrays.hashCode(floats) : Arrays.hashCode(longs));
    }

    @Override
    public String toString() {
        return "HostTensor" + dtype + Arrays.toString(shape);
    }
}
