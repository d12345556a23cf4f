package org.autocircuit.model.arch;

import java.io.IOException;
import org.autocircuit.model.WeightSource;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * Loads one checkpoint tensor and converts it inside a scope of its own, handing only the converted tensor to the
 * caller's scope: the float32 copy of the checkpoint's tensor is freed as soon as its converted form exists, so a
 * model never holds the checkpoint and its converted weights side by side.
 */
final class Scoped {
    private Scoped() {}

    /** A conversion of a loaded tensor. */
    @FunctionalInterface
    interface Conversion {
        Tensor apply(Tensor loaded);
    }

    /** A conversion of a loaded tensor into several (a packed Q/K/V projection into Q, K and V). */
    @FunctionalInterface
    interface Split {
        Tensor[] apply(Tensor loaded);
    }

    static Tensor load(WeightSource src, String name, long[] shape, Conversion conversion) throws IOException {
        return split(src, name, shape, t -> new Tensor[] {conversion.apply(t)})[0];
    }

    static Tensor[] split(WeightSource src, String name, long[] shape, Split split) throws IOException {
        PointerScope outer = PointerScope.getInnerScope();
        Tensor[] results;
        try (PointerScope scope = new PointerScope()) {
            results = split.apply(src.load(name, shape));
            for (int i = 0; i < results.length; i++) results[i] = src.keep(results[i]);   // in the model's dtype
            // one reference of our own across the scope's close, which frees everything else it holds. (Not
            // PointerScope.detach: it releases a reference even of a tensor the scope does not hold, such as one a
            // source returns from a cache made earlier, and that tensor would then be freed under its owner.)
            for (Tensor r : results) r.retainReference();
        }
        for (Tensor r : results) {
            if (outer != null) {
                outer.attach(r);
                r.releaseReference();
            }
        }
        return results;
    }

    /** The tensor as loaded. */
    static Tensor load(WeightSource src, String name, long... shape) throws IOException {
        return load(src, name, shape, t -> t);
    }
}
