package org.autocircuit.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.autocircuit.testing.ChildJvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The native objects of a Gloo group are freed in order and none is left to the garbage collector: healthy groups, a
 * failed join and a timed-out group, then garbage collection and reuse of the freed memory, in a child JVM under
 * glibc's heap checks. Before the fix this aborted every time (exit 134, "malloc(): unsorted double linked list
 * corrupted"): the Work of close()'s barrier was left to the collector and kept the group alive after its stores
 * were freed, and a failed join left its group store to the collector after freeing the TCP store it points into.
 * Without the checks the same corruption went unnoticed until some later test class aborted the shared test JVM.
 */
class GroupLifetimeTest {

    @Test
    @Timeout(180)
    void groupsFreeTheirNativeObjectsInOrder(@TempDir Path dir) throws Exception {
        Path log = dir.resolve("child.log");
        Process p = ChildJvm.start(log, Map.of("MALLOC_CHECK_", "3", "GLIBC_TUNABLES", "glibc.malloc.tcache_count=0"),
            GroupLifetimeWorker.class);
        assertTrue(p.waitFor(150, TimeUnit.SECONDS), "the child finished: " + ChildJvm.output(log));
        String out = ChildJvm.output(log);
        assertEquals(0, p.exitValue(), "exit code (134: glibc found a corrupted heap): " + out);
        assertTrue(out.contains("failed join: rank 0 could not form the process group of 2 ranks"), out);
        assertTrue(out.contains("timed-out group: true"), out);
        assertTrue(out.contains("survived"), out);
    }
}
