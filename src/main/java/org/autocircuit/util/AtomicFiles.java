package org.autocircuit.util;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.Set;

/**
 * Writes a file so that readers see either the old content or the complete new one, never a half-written file: the
 * bytes go to a temp file in the target's folder (same file system, so the rename is atomic) which then replaces
 * the target. A failed write leaves the target untouched and removes the temp file.
 *
 * <p>Every writer of this project names its temp files {@code .<target name>.<random>.tmp} ({@link #newTempFile}).
 * A process killed mid-write (kill -9, power loss) leaves one behind; the next write to the same target deletes
 * those not modified for {@link #STALE_AFTER} (a live writer keeps touching its own).
 *
 * <p>{@link #checkOutput} is the overwrite guard the command line applies to every output before any work: only a
 * missing path or a regular file may be replaced, never a folder, device, FIFO or symbolic link, never one of the
 * run's inputs, and an existing file only with {@code force} or when it is a file this tool wrote.
 */
public final class AtomicFiles {
    /** Temp files of ours untouched for this long belong to a dead writer. */
    public static final Duration STALE_AFTER = Duration.ofSeconds(60);

    private AtomicFiles() {}

    /** The body of a write, which may fail with an IOException. */
    @FunctionalInterface
    public interface Writer {
        void writeTo(OutputStream out) throws IOException;
    }

    /** A write that produces the file itself (for native writers that take a path). */
    @FunctionalInterface
    public interface PathWriter {
        void writeTo(Path tmp) throws IOException;
    }

    /**
     * @throws IOException whose message names {@code target} and why it cannot be written (missing or read-only
     *                     folder, target is a folder or not a regular file, disk full, ...)
     */
    public static void write(Path target, Writer body) throws IOException {
        writePath(target, tmp -> {
            try (OutputStream out = Files.newOutputStream(tmp)) {
                body.writeTo(out);
            }
        });
    }

    /** {@link #write} for a body that writes the temp file by path (libtorch archives, channels). */
    public static void writePath(Path target, PathWriter body) throws IOException {
        Path abs = target.toAbsolutePath().normalize();
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new IOException("cannot write " + target + ": folder " + dir + " does not exist");
        }
        String notRegular = notRegularReason(abs);
        if (notRegular != null) throw new IOException("cannot write " + target + ": it is " + notRegular);
        Path tmp;
        try {
            tmp = newTempFile(abs);
        } catch (IOException e) {
            throw new IOException("cannot write " + target + ": folder " + dir + " is not writable (" + e + ")", e);
        }
        boolean moved = false;
        try {
            body.writeTo(tmp);
            keepOrOpenPermissions(tmp, abs);
            commit(tmp, abs);
            moved = true;
        } catch (IOException e) {
            throw new IOException("cannot write " + target + ": " + e.getMessage(), e);
        } finally {
            if (!moved) Files.deleteIfExists(tmp);
        }
    }

    /**
     * A new temp file beside {@code target}, named {@code .<target name>.<random>.tmp}, after deleting stale temp
     * files of the same target.
     */
    public static Path newTempFile(Path target) throws IOException {
        Path abs = target.toAbsolutePath().normalize();
        deleteStaleTempFiles(abs);
        return Files.createTempFile(abs.getParent(), "." + abs.getFileName() + ".", ".tmp");
    }

    /** Renames {@code tmp} over {@code target}, atomically where the file system can. */
    public static void commit(Path tmp, Path target) throws IOException {
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * Deletes {@code .<target name>.*.tmp} files beside {@code target} not modified for {@link #STALE_AFTER}.
     *
     * @return how many were deleted
     */
    public static int deleteStaleTempFiles(Path target) {
        Path abs = target.toAbsolutePath().normalize();
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) return 0;
        String prefix = "." + abs.getFileName() + ".";
        Instant cutoff = Instant.now().minus(STALE_AFTER);
        int deleted = 0;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, p -> {
            String n = p.getFileName().toString();
            return n.startsWith(prefix) && n.endsWith(".tmp") && n.length() > prefix.length() + 4;
        })) {
            for (Path p : ds) {
                try {
                    BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                    if (a.isRegularFile() && a.lastModifiedTime().compareTo(FileTime.from(cutoff)) < 0) {
                        Files.deleteIfExists(p);
                        deleted++;
                    }
                } catch (IOException ignored) {
                    // another process removed it first, or it is not ours to remove
                }
            }
        } catch (IOException ignored) {
            // an unreadable folder fails the write itself, with a better message
        }
        return deleted;
    }

    /**
     * Why {@code path} is something a write must not replace (a folder, a symbolic link, a device, a FIFO), or null
     * when it is missing or a regular file.
     */
    public static String notRegularReason(Path path) {
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            return null;   // missing
        }
        if (a.isRegularFile()) return null;
        if (a.isDirectory()) return "a folder";
        if (a.isSymbolicLink()) {
            String to;
            try {
                to = String.valueOf(Files.readSymbolicLink(path));
            } catch (IOException e) {
                to = "?";
            }
            return "a symbolic link (to " + to + "); name the file it points to instead";
        }
        return "not a regular file (a device, FIFO or socket)";
    }

    /** Recognizes a file this tool wrote, which may be replaced without {@code --force}. */
    @FunctionalInterface
    public interface Ownership {
        boolean ownFile(Path existing) throws IOException;

        /** Nothing is recognized: an existing file always needs {@code --force}. */
        Ownership NONE = p -> false;
    }

    /**
     * The overwrite guard, checked before any work. {@code target} may be replaced when it does not exist yet, or it
     * is a regular file that is not one of {@code inputs} and either {@code force} is set or {@code ownership}
     * recognizes it. The folder is created if needed and must be writable.
     *
     * @param option names the output in messages ({@code "--result"})
     * @throws IllegalArgumentException naming the option, the path and why it may not be written
     */
    public static void checkOutput(Path target, String option, boolean force, Ownership ownership,
                                   Collection<Path> inputs) {
        Path abs = target.toAbsolutePath().normalize();
        String notRegular = notRegularReason(abs);
        if (notRegular != null) {
            throw new IllegalArgumentException(option + " " + target + ": refusing to replace it, it is " + notRegular);
        }
        for (Path in : inputs) {
            if (in != null && samePath(abs, in)) {
                throw new IllegalArgumentException(option + " " + target + " is also an input of this run (" + in
                    + "); refusing to overwrite an input");
            }
        }
        Path dir = abs.getParent();
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new IllegalArgumentException(option + ": cannot create the folder " + dir + " (" + e.getMessage() + ")");
        }
        if (!Files.isWritable(dir)) {
            throw new IllegalArgumentException(option + ": cannot write " + abs + " (the folder " + dir + " is not writable)");
        }
        if (Files.exists(abs, LinkOption.NOFOLLOW_LINKS) && !force) {
            boolean own;
            try {
                own = ownership.ownFile(abs);
            } catch (IOException e) {
                own = false;
            }
            if (!own) {
                throw new IllegalArgumentException(option + " " + target + " already exists and is not a file this tool "
                    + "wrote; pass --force to replace it");
            }
        }
    }

    /** True when {@code a} and {@code b} name the same file (the same inode when both exist, else the same path). */
    public static boolean samePath(Path a, Path b) {
        Path x = a.toAbsolutePath().normalize();
        Path y = b.toAbsolutePath().normalize();
        if (x.equals(y)) return true;
        try {
            return Files.exists(x) && Files.exists(y) && Files.isSameFile(x, y);
        } catch (IOException e) {
            return false;
        }
    }

    /** Checks that {@code dir} exists (creating it) and a file can be created in it, before any work. */
    public static void checkWritableFolder(Path dir, String option) {
        Path abs = dir.toAbsolutePath().normalize();
        if (Files.exists(abs) && !Files.isDirectory(abs)) {
            throw new IllegalArgumentException(option + " " + dir + " exists and is not a folder");
        }
        try {
            Files.createDirectories(abs);
            Path probe = Files.createTempFile(abs, ".autocircuit-write-check.", ".tmp");
            Files.delete(probe);
        } catch (IOException e) {
            throw new IllegalArgumentException(option + " " + dir + " is not a writable folder (" + e.getMessage() + ")");
        }
    }

    /**
     * Temp files are created owner-only (rw-------); a report or result is meant to be shared like any file the user
     * writes, so it gets the permissions of the file it replaces, or rw-r--r--.
     */
    private static void keepOrOpenPermissions(Path tmp, Path target) throws IOException {
        if (!Files.getFileStore(tmp).supportsFileAttributeView(PosixFileAttributeView.class)) return;
        Set<PosixFilePermission> perms = Files.exists(target) ? Files.getPosixFilePermissions(target)
            : PosixFilePermissions.fromString("rw-r--r--");
        Files.setPosixFilePermissions(tmp, perms);
    }
}
