package org.autocircuit.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.bench.state.LlamaWorkload;
import org.autocircuit.model.HookedTransformer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;

/**
 * What building W5's model ({@link LlamaWorkload}: Llama-3.2-1B's shape, 1.24 billion parameters, random bf16-valued
 * weights) costs in a fresh JVM: seconds, and the resident set before, right after and at its peak. One JSON line.
 * For the load path's memory, which JMH does not measure: a bfloat16 model must be built without a float32 copy of
 * the whole model.
 *
 * <pre>java -Xmx1g -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 -Dorg.bytedeco.javacpp.maxBytes=0 \
 *     -cp benchmarks/target/benchmarks.jar org.autocircuit.bench.LlamaBuildPeak bfloat16</pre>
 */
public final class LlamaBuildPeak {
    private LlamaBuildPeak() {}

    public static void main(String[] args) throws Exception {
        torch.ScalarType dtype = HookedTransformer.parseDtype(args.length > 0 ? args[0] : "bfloat16");
        try (PointerScope warm = new PointerScope()) {
            torch.randn(new long[] {64, 64}).matmul(torch.randn(new long[] {64, 64}));   // libtorch loaded
        }
        long before = kb("VmRSS");
        long start = System.nanoTime();
        try (HookedTransformer model = LlamaWorkload.randomBf16(LlamaWorkload.config(LlamaWorkload.VOCAB), dtype)) {
            double seconds = (System.nanoTime() - start) / 1e9;
            System.out.printf("{\"dtype\": \"%s\", \"buildSeconds\": %.1f, \"rssBeforeMB\": %d, \"rssAfterMB\": %d, "
                + "\"peakRssMB\": %d, \"loadAverage\": \"%s\"}%n", args.length > 0 ? args[0] : "bfloat16", seconds,
                before / 1024, kb("VmRSS") / 1024, kb("VmHWM") / 1024,
                Files.readString(Path.of("/proc/loadavg")).trim());
        }
    }

    private static long kb(String field) throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith(field + ":")) return Long.parseLong(line.replaceAll("\\D", ""));
        }
        return -1;
    }
}
