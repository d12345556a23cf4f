package org.autocircuit.metrics;

import java.util.List;

/** Checks shared by the metric implementations. */
final class Metrics {
    private Metrics() {}

    static List<org.autocircuit.data.PromptPairBatch> testBatches(MetricContext ctx) {
        if (ctx == null) throw new IllegalArgumentException("ctx must not be null");
        var batches = ctx.testBatches();
        if (batches == null || batches.isEmpty()) {
            throw new IllegalArgumentException("ctx.testBatches() is empty: a metric needs at least one test batch");
        }
        return batches;
    }
}
