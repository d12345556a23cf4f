package org.autocircuit.distributed;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.autocircuit.util.AtomicFiles;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;

/**
 * A worker for {@link LaunchTest}: joins the group from its environment, all-reduces three times and then rank 0
 * writes a result file, as a command would. With mode {@code die} rank 1 halts the JVM after the first all-reduce
 * (as a crash or a kill -9 would); with {@code hang} it sleeps instead. Exit code 1 and the error on stderr when the
 * group fails.
 */
public final class FaultyWorker {
    private FaultyWorker() {}

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        Path result = Path.of(args[1]);
        try (Collective c = ProcessGroupCollective.fromEnvironment()) {
            float sum = 0;
            for (int step = 0; step < 3; step++) {
                if (step == 1 && c.rank() == 1 && mode.equals("die")) Runtime.getRuntime().halt(9);
                if (step == 1 && c.rank() == 1 && mode.equals("hang")) Thread.sleep(10 * 60_000);
                try (PointerScope s = new PointerScope()) {
                    var t = AbstractTensor.create(new float[] {c.rank() + 1}, 1);
                    c.allReduceSumInPlace(t);
                    sum += t.data_ptr_float().get();
                }
            }
            if (c.isLeader()) {
                String text = "sum " + sum + "\n";
                AtomicFiles.write(result, out -> out.write(text.getBytes(StandardCharsets.UTF_8)));
                System.out.println(text.strip());
            }
        } catch (DistributedException e) {
            System.err.println("worker: " + e.getMessage());
            System.exit(1);
        }
    }
}
