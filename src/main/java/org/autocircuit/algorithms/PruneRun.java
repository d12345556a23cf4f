package org.autocircuit.algorithms;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.distributed.Collective;
import org.autocircuit.graph.Edge;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.util.Progress;

/**
 * Everything one algorithm run reads: the patchable model (whose graph the scores cover), the training batches,
 * and the optional extras some algorithms need.
 *
 * @param model         the model to score; algorithms may leave its masks changed (quirk 2 of docs/quirks.md)
 * @param train         the training batches (ACDC reads only the first)
 * @param officialEdges the task's known circuit, or null; ground truth and circuit probing's "true_size" need it
 * @param progress      where long runs report progress; it may throw to cancel
 * @param seed          the seed of seeded algorithms (random scores, hard-concrete sampling, probing)
 * @param checkpoint    a file where resumable algorithms (ACDC, probing) keep finished work, or null
 * @param collective    the ranks of a data-parallel run ({@link Collective#single()} for one process): mask-gradient
 *                      algorithms and exact EAP score their shard of {@code train} and sum over ranks; ACDC and
 *                      probing split each batch's prompts and exchange sums per trial or gradients per step
 * @param identity      what a checkpoint must agree on besides the graph and the first batch (weights, dataset,
 *                      options, code), or null; see {@link RunIdentity}
 */
public record PruneRun(PatchableModel model, List<PromptPairBatch> train, Set<Edge> officialEdges,
                       Progress progress, long seed, Path checkpoint, Collective collective, RunIdentity identity) {

    public PruneRun {
        if (model == null) {
            throw new IllegalArgumentException("model must not be null");
        }
        if (train == null || train.isEmpty()) {
            throw new IllegalArgumentException("train must hold at least one batch");
        }
        train = List.copyOf(train);
        officialEdges = officialEdges == null ? null : Set.copyOf(officialEdges);
        progress = progress == null ? Progress.NONE : progress;
        collective = collective == null ? Collective.single() : collective;
    }

    /** A run without a {@link RunIdentity}. */
    public PruneRun(PatchableModel model, List<PromptPairBatch> train, Set<Edge> officialEdges,
                    Progress progress, long seed, Path checkpoint, Collective collective) {
        this(model, train, officialEdges, progress, seed, checkpoint, collective, null);
    }

    /** A single-process run with a {@link RunIdentity}. */
    public PruneRun(PatchableModel model, List<PromptPairBatch> train, Set<Edge> officialEdges,
                    Progress progress, long seed, Path checkpoint, RunIdentity identity) {
        this(model, train, officialEdges, progress, seed, checkpoint, Collective.single(), identity);
    }

    /** A single-process run. */
    public PruneRun(PatchableModel model, List<PromptPairBatch> train, Set<Edge> officialEdges,
                    Progress progress, long seed, Path checkpoint) {
        this(model, train, officialEdges, progress, seed, checkpoint, Collective.single(), null);
    }

    /** A run with no official edges, no progress reporting, seed 0 and no checkpoint. */
    public static PruneRun of(PatchableModel model, List<PromptPairBatch> train) {
        return new PruneRun(model, train, null, Progress.NONE, 0L, null);
    }

    public PruneRun withOfficialEdges(Set<Edge> edges) {
        return new PruneRun(model, train, edges, progress, seed, checkpoint, collective, identity);
    }

    public PruneRun withProgress(Progress p) {
        return new PruneRun(model, train, officialEdges, p, seed, checkpoint, collective, identity);
    }

    public PruneRun withSeed(long s) {
        return new PruneRun(model, train, officialEdges, progress, s, checkpoint, collective, identity);
    }

    public PruneRun withCheckpoint(Path file) {
        return new PruneRun(model, train, officialEdges, progress, seed, file, collective, identity);
    }

    /** The same run over the ranks of {@code c}. */
    public PruneRun withCollective(Collective c) {
        return new PruneRun(model, train, officialEdges, progress, seed, checkpoint, c, identity);
    }

    public PruneRun withIdentity(RunIdentity id) {
        return new PruneRun(model, train, officialEdges, progress, seed, checkpoint, collective, id);
    }

    /** The official edges, or an error naming the algorithm that needs them. */
    public Set<Edge> requireOfficialEdges(String algorithm) {
        return Optional.ofNullable(officialEdges).orElseThrow(() -> new IllegalArgumentException(
            algorithm + " needs the task's official edges, but none were given"));
    }
}
