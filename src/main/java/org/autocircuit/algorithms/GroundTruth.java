package org.autocircuit.algorithms;

import java.util.Collection;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;

/**
 * Ground truth: the task's official circuit as scores, 1 for every official edge and 0 elsewhere.
 * Measured like any algorithm, it shows how the known circuit does on each metric.
 */
public final class GroundTruth {
    private GroundTruth() {}

    /** The {@link PruneAlgorithm} form: needs {@code run.officialEdges()}. */
    public static PruneScores scores(PruneRun run) {
        return scores(run.model().graph(), run.requireOfficialEdges("ground truth"));
    }

    /**
     * @throws IllegalArgumentException if {@code officialEdges} is null, or naming the first official edge that is not
     *                                  in {@code graph} (a circuit written for another model or graph kind)
     */
    public static PruneScores scores(Graph graph, Collection<Edge> officialEdges) {
        if (officialEdges == null) throw new IllegalArgumentException("ground truth needs the task's official edges, but none were given");
        for (Edge e : officialEdges) {
            try {
                graph.edgeIndex(e);
            } catch (IllegalArgumentException notInGraph) {
                throw new IllegalArgumentException("ground truth: official edge " + e.name()
                    + e.seqIdx().stream().mapToObj(s -> " at position " + s).findFirst().orElse("")
                    + " is not an edge of the model's graph (" + graph + ")", notInGraph);
            }
        }
        return PruneScores.circuit(graph, officialEdges);
    }
}
