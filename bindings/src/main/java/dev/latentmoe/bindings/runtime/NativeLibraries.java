package dev.latentmoe.bindings.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Finds and loads the LatentMoE native libraries ({@code lib<baseName>.so}).
 *
 * <p>Search order: the directory named by the system property {@code latentmoe.native.dir} (when set and
 * the file is there), then the copy packaged in the jar at {@code /native/linux-x86_64/}, which is
 * extracted once per JVM into a temporary directory. Only linux-x86_64 is supported. Loaded
 * libraries stay loaded for the life of the JVM ({@link Arena#global()}) and are cached by name.
 */
public final class NativeLibraries {

  /** System property naming a directory that holds {@code liblatentmoe*.so} (the CMake output). */
  public static final String DIR_PROPERTY = Knob.NATIVE_DIR.key();

  /** Jar resource directory of the packaged libraries. */
  public static final String RESOURCE_DIR = "/native/linux-x86_64/";

  /** Base name of the CPU library. */
  public static final String CPU = "latentmoe";

  /** Base name of the CUDA library. */
  public static final String CUDA = "latentmoe_cuda";

  private record Loaded(Path path, SymbolLookup lookup) {}

  private static final Map<String, Loaded> LOADED = new ConcurrentHashMap<>();

  private NativeLibraries() {}

  /** The CPU library; see {@link #load(String)}. */
  public static SymbolLookup cpu() {
    return load(CPU);
  }

  /** The CUDA library; see {@link #load(String)}. */
  public static SymbolLookup cuda() {
    return load(CUDA);
  }

  /**
   * Loads {@code lib<baseName>.so} (once per JVM) and returns its symbols.
   *
   * @throws UnsatisfiedLinkError with the reason when the platform is unsupported, the file is
   *     found nowhere, or the dynamic loader rejects it
   */
  public static SymbolLookup load(String baseName) {
    return loaded(baseName).lookup();
  }

  /** Like {@link #load(String)}, but returns the failure reason instead of throwing. */
  public static Result tryLoad(String baseName) {
    try {
      return new Result(Optional.of(load(baseName)), null);
    } catch (UnsatisfiedLinkError e) {
      return new Result(Optional.empty(), e.getMessage());
    } catch (RuntimeException e) {
      // e.g. native access denied (--illegal-native-access=deny): still a reason, not a crash.
      return new Result(Optional.empty(), "cannot load " + fileName(baseName) + ": " + e);
    }
  }

  /** The outcome of {@link #tryLoad(String)}: a lookup, or the reason there is none. */
  public record Result(Optional<SymbolLookup> lookup, String reason) {
    public boolean isLoaded() {
      return lookup.isPresent();
    }
  }

  /** The file a library was loaded from, if it has been loaded. */
  public static Optional<Path> loadedPath(String baseName) {
    return Optional.ofNullable(LOADED.get(baseName)).map(Loaded::path);
  }

  /** {@code lib<baseName>.so}. */
  public static String fileName(String baseName) {
    return "lib" + baseName + ".so";
  }

  private static Loaded loaded(String baseName) {
    return loaded(baseName, Knob.NATIVE_DIR.get());
  }

  /** {@link #load(String)} with an explicit directory instead of the property; for tests. */
  static SymbolLookup load(String baseName, String dir) {
    return loaded(baseName, dir).lookup();
  }

  @SuppressWarnings("restricted") // loading native code is this class's purpose
  private static Loaded loaded(String baseName, String dir) {
    Loaded l = LOADED.get(baseName);
    if (l != null) {
      return l;
    }
    // Serialised so a library is located, extracted and dlopen'ed once even under races.
    synchronized (NativeLibraries.class) {
      l = LOADED.get(baseName);
      if (l == null) {
        Path path = locate(baseName, dir);
        SymbolLookup lookup;
        try {
          lookup = SymbolLookup.libraryLookup(path, Arena.global());
        } catch (IllegalArgumentException | IllegalCallerException e) {
          // IllegalCallerException: native access not enabled for this module.
          throw linkError("cannot load " + path + ": " + e.getMessage(), e);
        }
        l = new Loaded(path, lookup);
        LOADED.put(baseName, l);
      }
      return l;
    }
  }

  /**
   * Where {@code lib<baseName>.so} is: in {@code dir} if that is non-null and has it, else
   * extracted from the jar. Package-private for tests.
   */
  static Path locate(String baseName, String dir) {
    String unsupported = unsupportedPlatform();
    if (unsupported != null) {
      throw new UnsatisfiedLinkError(unsupported);
    }
    String name = fileName(baseName);
    String dirNote;
    if (dir != null && !dir.isBlank()) {
      Path candidate = Path.of(dir).resolve(name).toAbsolutePath();
      if (Files.isRegularFile(candidate)) {
        return candidate;
      }
      dirNote = candidate + " does not exist";
    } else {
      dirNote = "system property " + DIR_PROPERTY + " is not set";
    }
    Path extracted = extractFromJar(name);
    if (extracted != null) {
      return extracted;
    }
    throw new UnsatisfiedLinkError(
        name + " not found: " + dirNote + ", and the classpath has no resource " + RESOURCE_DIR
            + name + " (build native/ with CMake and pass -D" + DIR_PROPERTY + "=<dir>)");
  }

  /** Null when this platform is supported, else why not. */
  public static String unsupportedPlatform() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
    boolean linux = os.startsWith("linux");
    boolean x64 = arch.equals("amd64") || arch.equals("x86_64");
    if (linux && x64) {
      return null;
    }
    return "LatentMoE native libraries are built for linux-x86_64 only; this JVM runs on "
        + System.getProperty("os.name") + "/" + System.getProperty("os.arch");
  }

  private static Path extractFromJar(String name) {
    // Resolved against this class so it works from a jar and from target/classes alike.
    try (InputStream in = NativeLibraries.class.getResourceAsStream(RESOURCE_DIR + name)) {
      if (in == null) {
        return null;
      }
      Path target = tempDir().resolve(name);
      Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
      target.toFile().deleteOnExit();
      return target;
    } catch (IOException e) {
      throw linkError("cannot extract " + RESOURCE_DIR + name + ": " + e, e);
    }
  }

  /** One temporary directory per JVM, made on first extraction; guarded by the class lock. */
  private static Path tempDir;

  private static synchronized Path tempDir() throws IOException {
    if (tempDir == null) {
      Path dir = Files.createTempDirectory("latentmoe-native-");
      // deleteOnExit runs in reverse order of registration: the files first, then this directory.
      dir.toFile().deleteOnExit();
      tempDir = dir;
    }
    return tempDir;
  }

  private static UnsatisfiedLinkError linkError(String message, Throwable cause) {
    UnsatisfiedLinkError e = new UnsatisfiedLinkError(message);
    e.initCause(cause);
    return e;
  }
}
