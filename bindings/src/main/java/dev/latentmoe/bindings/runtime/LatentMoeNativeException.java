package dev.latentmoe.bindings.runtime;

/** A native LatentMoE (or CUDA) call returned a failure status. */
public class LatentMoeNativeException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  private final int status;
  private final String nativeMessage;

  /**
   * @param what the operation, for the message (e.g. "lmoe_cpu_forward")
   * @param status the non-zero status code returned
   * @param statusName a readable name for {@code status}
   * @param nativeMessage the library's own error text (may be empty)
   */
  public LatentMoeNativeException(String what, int status, String statusName, String nativeMessage) {
    super(what + " failed: " + statusName + " (" + status + ")"
        + (nativeMessage == null || nativeMessage.isEmpty() ? "" : ": " + nativeMessage));
    this.status = status;
    this.nativeMessage = nativeMessage == null ? "" : nativeMessage;
  }

  /** The status code the native call returned. */
  public int status() {
    return status;
  }

  /** The native library's error text for the failing call; empty when it gave none. */
  public String nativeMessage() {
    return nativeMessage;
  }
}
