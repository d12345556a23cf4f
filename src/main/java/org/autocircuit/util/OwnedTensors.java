package org.autocircuit.util;

import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * Native tensors owned by one long-lived object (model weights, patch masks) rather than by the
 * {@link PointerScope} that happened to be open when they were made.
 *
 * <p>JavaCPP attaches every new tensor handle to the innermost open scope, which releases it when the
 * scope closes. Weights and masks must outlive such scopes, so {@link #adopt} takes a reference of its
 * own and records the handle here; {@link #close} releases them all, deterministically.
 */
public final class OwnedTensors implements AutoCloseable {
    private final List<Tensor> tensors = new ArrayList<>();
    private boolean closed;

    /** Takes ownership of {@code t} (it then outlives every open scope) and returns it. */
    public synchronized Tensor adopt(Tensor t) {
        if (closed) throw new IllegalStateException("OwnedTensors is closed");
        tensors.add(keepAlive(t));
        return t;
    }

    /**
     * Keeps {@code t} alive past the {@link PointerScope} it was created in: takes one extra reference, so
     * the scope's release on close leaves it allocated. The caller becomes responsible for one
     * {@code t.close()}, which frees it. (A scope's {@code detach} is no substitute: it releases the
     * scope's reference and so frees the tensor at once.)
     */
    public static Tensor keepAlive(Tensor t) {
        t.retainReference();
        return t;
    }

    /** Frees {@code t} now if this owner holds it (for replaced masks, say). */
    public synchronized void release(Tensor t) {
        if (tensors.remove(t)) t.close();
    }

    public synchronized int size() {
        return tensors.size();
    }

    /** Frees every adopted tensor. Closing twice is a no-op. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        for (Tensor t : tensors) t.close();
        tensors.clear();
    }
}
