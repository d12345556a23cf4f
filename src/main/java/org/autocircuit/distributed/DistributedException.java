package org.autocircuit.distributed;

/**
 * A failure of the process group: a rank that died or hung past the timeout, a master that cannot be reached, a port
 * in use, ranks that disagree about the world size or the model. The message says which and what to do; the
 * command line prints it and exits with 1.
 */
public final class DistributedException extends RuntimeException {
    public DistributedException(String message) {
        super(message);
    }

    public DistributedException(String message, Throwable cause) {
        super(message, cause);
    }

    /**
     * The first line of a libtorch error (its message goes on with a C++ stack trace), without the source path
     * prefix {@code [/long/path/file.cc:123] }.
     */
    static String nativeMessage(Throwable e) {
        String m = String.valueOf(e.getMessage());
        int nl = m.indexOf('\n');
        if (nl >= 0) m = m.substring(0, nl);
        if (m.startsWith("[")) {
            int close = m.indexOf("] ");
            if (close > 0) m = m.substring(close + 2);
        }
        return m.strip();
    }
}
