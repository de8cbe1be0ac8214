package dev.latentmoe.memory.interop;

/**
 * A foreign Arrow C Data / C Device Data or DLPack structure that cannot be imported (malformed,
 * unsupported type, layout or device, released already, sizes that overflow), or a tensor that
 * cannot be exported in the requested form. Unchecked; the message names the structure and field.
 */
public class InteropException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public InteropException(String message) { super(message); }

    public InteropException(String message, Throwable cause) { super(message, cause); }
}
