package dev.latentmoe.bindings.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.URL;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Finds and loads the LatentMoE native libraries ({@code lib<baseName>.so}).
 *
 * <p>Search order: the directory named by the system property {@code latentmoe.native.dir} (when set and
 * the file is there), then the class path / module path at {@code native/linux-x86_64/}, where the
 * platform-classified artifact {@code dev.latentmoe:latentmoe-native} (classifier
 * {@code linux-x86_64}, or {@code linux-x86_64-cuda13} with the CUDA library too) puts them; a copy
 * found there is extracted once per JVM into one temporary directory under {@code java.io.tmpdir}
 * (deleted at exit). Only linux-x86_64 is supported. Loaded libraries stay loaded for the life of the
 * JVM ({@link Arena#global()}) and are cached by name.
 *
 * <p>The resource is looked up through class loaders, not this class's module, so the natives may
 * sit in a jar of their own: on the class path, or on the module path as an automatic module
 * ({@code native/linux-x86_64} is not a package, so it is not encapsulated).
 */
public final class NativeLibraries {

  /** System property naming a directory that holds {@code liblatentmoe*.so} (the CMake output). */
  public static final String DIR_PROPERTY = Knob.NATIVE_DIR.key();

  /** Jar resource directory of the packaged libraries. */
  public static final String RESOURCE_DIR = "/native/linux-x86_64/";

  /**
   * The properties file beside the libraries in a native jar ({@code version}, {@code variant},
   * {@code libraries}); named in error messages so that a user sees which jar was found.
   */
  public static final String PROPERTIES = "latentmoe-native.properties";

  /** The Maven coordinates of the native jars, for messages. */
  public static final String ARTIFACT = "dev.latentmoe:latentmoe-native";

  /** Base name of the CPU library. */
  public static final String CPU = "latentmoe";

  /** Base name of the CUDA library. */
  public static final String CUDA = "latentmoe_cuda";

  private record Loaded(Path path, String source, SymbolLookup lookup) {}

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

  /**
   * Where a loaded library came from: its directory ({@code latentmoe.native.dir}) or the jar URL
   * of the resource it was extracted from, with the jar's {@code version} when it names one.
   */
  public static Optional<String> loadedSource(String baseName) {
    return Optional.ofNullable(LOADED.get(baseName)).map(Loaded::source);
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
        Located found = find(baseName, dir);
        SymbolLookup lookup;
        try {
          lookup = SymbolLookup.libraryLookup(found.path(), Arena.global());
        } catch (IllegalArgumentException | IllegalCallerException e) {
          // IllegalCallerException: native access not enabled for this module.
          throw linkError("cannot load " + found.path() + " (" + found.source() + "): "
              + e.getMessage(), e);
        }
        l = new Loaded(found.path(), found.source(), lookup);
        LOADED.put(baseName, l);
      }
      return l;
    }
  }

  /** A library file and where it came from (directory or jar URL). Package-private for tests. */
  record Located(Path path, String source) {}

  /**
   * Where {@code lib<baseName>.so} is: in {@code dir} if that is non-null and has it, else
   * extracted from the class path. Package-private for tests.
   */
  static Path locate(String baseName, String dir) {
    return find(baseName, dir).path();
  }

  /** {@link #locate} with where the file came from. Package-private for tests. */
  static Located find(String baseName, String dir) {
    String unsupported = unsupportedPlatform();
    if (unsupported != null) {
      throw new UnsatisfiedLinkError(unsupported);
    }
    String name = fileName(baseName);
    String dirNote;
    if (dir != null && !dir.isBlank()) {
      Path candidate = Path.of(dir).resolve(name).toAbsolutePath();
      if (Files.isRegularFile(candidate)) {
        return new Located(candidate, DIR_PROPERTY + "=" + dir);
      }
      dirNote = candidate + " does not exist";
    } else {
      dirNote = "system property " + DIR_PROPERTY + " is not set";
    }
    Located extracted = extractFromClassPath(name);
    if (extracted != null) {
      return extracted;
    }
    throw new UnsatisfiedLinkError(
        name + " not found: " + dirNote + ", and the class path has no resource " + RESOURCE_DIR
            + name + ". Add the native jar to the dependencies: " + ARTIFACT
            + " with classifier linux-x86_64 (CPU) or linux-x86_64-cuda13 (CPU and CUDA), of the"
            + " same version as latentmoe-bindings; or build native/ with CMake and pass -D"
            + DIR_PROPERTY + "=<dir>");
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

  /**
   * The resource URL of {@code name}: from a {@link NativeLibraryBundle} service (the classified
   * native jars), else through this class's loader, then the thread's context loader.
   */
  private static URL resource(String name) {
    for (ClassLoader loader : loaders()) {
      try {
        for (NativeLibraryBundle bundle : ServiceLoader.load(NativeLibraryBundle.class, loader)) {
          URL url = bundle.find(name);
          if (url != null) {
            return url;
          }
        }
      } catch (ServiceConfigurationError e) {
        // A broken provider on the class path must not hide a usable copy: fall through.
      }
    }
    String path = RESOURCE_DIR.substring(1) + name;
    for (ClassLoader loader : loaders()) {
      URL url = loader.getResource(path);
      if (url != null) {
        return url;
      }
    }
    return null;
  }

  /** This class's loader, then the context loader (an application server may see the natives only there). */
  private static List<ClassLoader> loaders() {
    ClassLoader own = NativeLibraries.class.getClassLoader();
    if (own == null) {
      own = ClassLoader.getSystemClassLoader();
    }
    ClassLoader context = Thread.currentThread().getContextClassLoader();
    return context == null || context == own ? List.of(own) : List.of(own, context);
  }

  private static Located extractFromClassPath(String name) {
    URL url = resource(name);
    if (url == null) {
      return null;
    }
    String source = url + describeJar(url);
    try (InputStream in = url.openStream()) {
      Path target = tempDir().resolve(name);
      Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
      target.toFile().deleteOnExit();
      return new Located(target, source);
    } catch (IOException e) {
      throw linkError("cannot extract " + source + " into " + System.getProperty("java.io.tmpdir")
          + " (set -Djava.io.tmpdir to a writable directory): " + e, e);
    }
  }

  /**
   * " (latentmoe-native VERSION, VARIANT)" from the properties file beside {@code library}, or ""
   * when there is none (e.g. a test resource).
   */
  private static String describeJar(URL library) {
    String s = library.toString();
    String props = s.substring(0, s.lastIndexOf('/') + 1) + PROPERTIES;
    Properties p = new Properties();
    try (InputStream in = URI.create(props).toURL().openStream()) {
      p.load(in);
    } catch (IOException | IllegalArgumentException e) {
      return "";
    }
    return " (latentmoe-native " + p.getProperty("version", "?") + ", "
        + p.getProperty("variant", "?") + ")";
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
