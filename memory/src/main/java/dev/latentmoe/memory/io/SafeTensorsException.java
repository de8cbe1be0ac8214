package dev.latentmoe.memory.io;

import java.nio.file.Path;

/**
 * A safetensors file, checkpoint directory or index that cannot be read: truncated, corrupt header,
 * offsets out of range, missing or unsupported tensor, unsafe shard path. The message names the
 * file (or directory) and the problem. Unchecked, since a bad checkpoint is not recoverable.
 */
public class SafeTensorsException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final transient Path file;

    public SafeTensorsException(Path file, String problem) {
        super(file + ": " + problem);
        this.file = file;
    }

    public SafeTensorsException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
        this.file = file;
    }

    /** The file or directory the problem is in. */
    public Path file() { return file; }
}
