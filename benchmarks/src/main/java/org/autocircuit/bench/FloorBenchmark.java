package org.autocircuit.bench;

import java.util.concurrent.TimeUnit;
import org.autocircuit.bench.state.Gpt2SmallWorkload;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.metrics.TensorOps;
import org.autocircuit.model.HookPoints;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The floor under W1–W3: GPT-2 small's own work on the same 32 prompts (2 batches of 16), unpatched, no edge masks,
 * every batch once per invocation. {@code forward}: one plain forward pass per batch (what an ablation pass or a
 * run_circuits circuit costs at least). {@code forwardBackward}: a forward pass with gradients from the residual
 * stream at block 0 on, and the backward pass of the mean logit difference down to it (activation gradients only, no
 * weight gradients: what a mask-gradient point costs at least). docs/native.md divides each workload's time by the
 * floor of the passes it runs: W1 = forward + forwardBackward, W2 = forward + 11 forwardBackward, W3 = 7 forward
 * (per batch: one patch run, six circuits).
 *
 * <p>Before timing, the floor's plain forward is checked against the patchable model's forward with every mask at 0
 * (the same logits, the patching reduced to nothing).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 1)
@Measurement(iterations = 5)
@Fork(value = 1, jvmArgs = {"-Xmx3g", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0", "-Dorg.bytedeco.javacpp.maxBytes=0"})
public class FloorBenchmark {
    Gpt2SmallWorkload workload;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        workload = new Gpt2SmallWorkload(Gpt2SmallWorkload.GPT2_SMALL, Gpt2SmallWorkload.kernels("native"));
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            PromptPairBatch batch = workload.batches.get(0);
            Tensor input = Inputs.clean(batch), padding = Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN);
            float[] plain = org.autocircuit.util.HostTensor.of(workload.model.forward(input, padding)).floats();
            workload.model.setAllMasks(0.0);
            Tensor patch = Ablations.srcAblations(workload.model, Inputs.corrupt(batch),
                Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT), org.autocircuit.patching.AblationType.RESAMPLE);
            float[] patched;
            try (var mode = workload.model.patchMode(patch)) {
                patched = org.autocircuit.util.HostTensor.of(workload.model.forward(input, padding)).floats();
            }
            Gpt2SmallWorkload.checkClose(patched, plain, 1e-4, 1e-4, "floor forward vs patched forward at mask 0");
        }
    }

    @Benchmark
    public void forward() {
        for (PromptPairBatch batch : workload.batches) {
            try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                workload.model.forward(Inputs.clean(batch), Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN));
            }
        }
    }

    @Benchmark
    public void forwardBackward() {
        HookPoints leaf = new HookPoints() {
            @Override
            public Tensor apply(String name, Tensor value) {
                return name.equals("blocks.0.hook_resid_pre") ? value.detach().requires_grad_(true) : value;
            }

            @Override
            public boolean observes(String name) {
                return name.equals("blocks.0.hook_resid_pre");
            }
        };
        for (PromptPairBatch batch : workload.batches) {
            try (PointerScope scope = new PointerScope()) {
                Tensor logits = workload.model.forwardWithHooks(Inputs.clean(batch),
                    Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN), leaf);
                TensorOps.batchAvgAnswerDiff(logits, batch).neg().backward();
            }
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        workload.close();
    }
}
