/**
 * Metrics that score circuits found by edge patching: AutoCircuit's {@code auto_circuit/metrics/} and the
 * answer arithmetic of {@code utils/tensor_ops.py}.
 *
 * <ul>
 *   <li>{@link org.autocircuit.metrics.TensorOps}: differentiable answer/logit arithmetic over libtorch tensors, shared
 *       with the gradient-based prune algorithms (their loss is, say, minus the average logit difference).</li>
 *   <li>{@link org.autocircuit.metrics.PruneMetric} and the registry {@link org.autocircuit.metrics.PruneMetrics}: the 14
 *       prune metrics of AutoCircuit, each mapping a circuit's outputs at every edge count to one
 *       {@link org.autocircuit.metrics.Measurement}. What a metric needs from the model (the unpatched clean and corrupt
 *       outputs, the test batches) comes through {@link org.autocircuit.metrics.MetricContext}, which the patching layer
 *       implements, so this package never runs a model itself.</li>
 *   <li>{@link org.autocircuit.metrics.AreaUnderCurve}: AutoCircuit's area under a metric-versus-edges curve, and
 *       {@link org.autocircuit.metrics.Faithfulness}: MIB's CPR/CMD faithfulness areas.</li>
 *   <li>{@link org.autocircuit.metrics.PruneScoreSimilarity}: the overlap of different algorithms' top-k circuits.</li>
 * </ul>
 *
 * <p>Memory: methods that return a libtorch {@code Tensor} create it (and their temporaries) in the caller's current
 * {@code PointerScope}; methods that return Java values open their own scope and free every native temporary before
 * returning. Result types ({@code Measurement}, {@code AnswerDiffPercent.Result}) hold no native memory.
 */
package org.autocircuit.metrics;
