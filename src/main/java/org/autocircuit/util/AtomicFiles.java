package org.autocircuit.util;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * Writes a file so that readers see either the old content or the complete new one, never a half-written file: the
 * bytes go to a temp file in the target's folder (same file system, so the rename is atomic) which then replaces
 * the target. A failed write leaves the target untouched and removes the temp file.
 */
public final class AtomicFiles {
    private AtomicFiles() {}

    /** The body of a write, which may fail with an IOException. */
    @FunctionalInterface
    public interface Writer {
        void writeTo(OutputStream out) throws IOException;
    }

    /**
     * @throws IOException whose message names {@code target} and why it cannot be written (missing or read-only
     *                     folder, target is a folder, disk full, ...)
     */
    public static void write(Path target, Writer body) throws IOException {
        Path abs = target.toAbsolutePath().normalize();
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new IOException("cannot write " + target + ": folder " + dir + " does not exist");
        }
        if (Files.isDirectory(abs)) {
            throw new IOException("cannot write " + target + ": it is a folder");
        }
        Path tmp;
        try {
            tmp = Files.createTempFile(dir, "." + abs.getFileName() + ".", ".tmp");
        } catch (IOException e) {
            throw new IOException("cannot write " + target + ": folder " + dir + " is not writable (" + e + ")", e);
        }
        boolean moved = false;
        try {
            try (OutputStream out = Files.newOutputStream(tmp)) {
                body.writeTo(out);
            }
            keepOrOpenPermissions(tmp, abs);
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
            moved = true;
        } catch (IOException e) {
            throw new IOException("cannot write " + target + ": " + e.getMessage(), e);
        } finally {
            if (!moved) Files.deleteIfExists(tmp);
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
