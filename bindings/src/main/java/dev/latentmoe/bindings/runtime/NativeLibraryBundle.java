package dev.latentmoe.bindings.runtime;

import java.net.URL;

/**
 * A jar of native libraries: each platform-classified jar of {@code dev.latentmoe:latentmoe-native}
 * ({@code linux-x86_64}, {@code linux-x86_64-cuda13}) registers one with {@link java.util.ServiceLoader}
 * ({@code META-INF/services} on the class path; on the module path the jar is an automatic module
 * that the resolver binds because {@code dev.latentmoe.bindings} uses this service, so no
 * {@code --add-modules} is needed). {@link NativeLibraries} asks each bundle for a library before
 * falling back to a plain class-loader lookup.
 */
public interface NativeLibraryBundle {
  /** The Maven classifier of the jar, e.g. {@code linux-x86_64}. */
  String classifier();

  /**
   * The resource {@code native/linux-x86_64/<fileName>} in this bundle's own jar, or null when it
   * does not carry that library. Resolved against the implementing class, so it finds its own
   * jar's copy even when other jars hold the same path.
   */
  default URL find(String fileName) {
    return getClass().getResource(NativeLibraries.RESOURCE_DIR + fileName);
  }
}
