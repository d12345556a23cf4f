package org.autocircuit.algorithms;

import org.autocircuit.graph.PruneScores;

/**
 * A circuit-discovery algorithm: it scores every edge of the model's graph from the training prompts. A higher
 * |score| means the edge matters more to the behaviour. Implementations are stateless; everything a run
 * needs (model, prompts, official edges, seed, progress, checkpoint) arrives in the {@link PruneRun}.
 */
@FunctionalInterface
public interface PruneAlgorithm {
    PruneScores scores(PruneRun run);
}
