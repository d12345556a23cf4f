package org.autocircuit.metrics;

import java.util.List;
import org.autocircuit.patching.CircuitOutputs;

/**
 * AutoCircuit's {@code metric_func(model, test_loader, circuit_outs) -> Measurements}: one {@link Measurement} per edge
 * count of {@code outs}, in ascending edge-count order.
 */
@FunctionalInterface
public interface MetricFunction {
    List<Measurement> measure(MetricContext ctx, CircuitOutputs outs);
}
