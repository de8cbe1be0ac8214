package dev.latentmoe.bench.nvidia;

import dev.latentmoe.bindings.runtime.Knob;
import dev.latentmoe.bindings.runtime.Library;
import dev.latentmoe.bindings.runtime.NativeLibraries;
import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Finds and loads NVIDIA libraries that are not packaged with LatentMoE and that only the bench
 * (and its tests) use: the CUDA runtime ({@code libcudart.so.13}) and cuBLASLt
 * ({@code libcublasLt.so.13}).
 *
 * <p>Directories searched, in order ({@link #cudaLibraryDirs(List)}):
 * <ol>
 *   <li>the directories in the system property {@code latentmoe.cuda.lib.dir} (path-separated);</li>
 *   <li>the CUDA toolkit: {@code $CUDA_HOME/lib64}, {@code $CUDA_HOME/lib}, {@code $CUDA_PATH/lib64},
 *       {@code /usr/local/cuda/lib64}, {@code /usr/local/cuda/targets/x86_64-linux/lib};</li>
 *   <li>every directory of {@code LD_LIBRARY_PATH};</li>
 *   <li>an installed Python {@code nvidia} package: for each site-packages directory reported by
 *       {@code python3 -c 'import site; ...'} (asked once per JVM, 10 s limit), its
 *       {@code nvidia/cu13/lib} and the per-library wheel folder ({@code nvidia/cuda_runtime/lib},
 *       {@code nvidia/cublas/lib});</li>
 *   <li>the repository's pinned wheel install {@code .tools/cuda/nvidia/cu13/lib} (the repository
 *       is {@code -Dlatentmoe.repo.dir}, else the nearest ancestor of the working directory with a
 *       {@code .tools/cuda} folder);</li>
 *   <li>finally the dynamic loader's own search by file name (ld.so.cache, /etc/ld.so.conf).</li>
 * </ol>
 * The first file that exists and that the dynamic loader accepts wins; when none does, the result
 * carries every place searched and every loader error. Loaded libraries stay loaded for the life
 * of the JVM and are cached by file name.
 */
public final class SystemLibraries {

  /** The CUDA runtime's file name (CUDA 13). */
  public static final String CUDART = "libcudart.so.13";

  /** cuBLASLt's file name (CUDA 13). */
  public static final String CUBLASLT = "libcublasLt.so.13";

  private SystemLibraries() {}

  /**
   * The outcome of a search.
   *
   * @param lookup the library's symbols, when one was loaded
   * @param path the file loaded (empty when the dynamic loader found it by name, or nothing loaded)
   * @param reason null when loaded, else why not: the file name, every place searched, loader errors
   * @param searched the candidate files tried, in order
   */
  public record Found(Optional<SymbolLookup> lookup, Optional<Path> path, String reason,
      List<Path> searched) {
    public boolean isLoaded() {
      return lookup.isPresent();
    }

    /** The result as a header class's {@link Library}; {@code fileName} names it when no file was loaded. */
    public Library library(String fileName) {
      return new Library(lookup.orElse(null), reason, path.map(String::valueOf).orElse(fileName), searched);
    }
  }

  private static final Map<String, Found> CACHE = new ConcurrentHashMap<>();

  /** {@code libcudart.so.13} from the CUDA directories (cached). */
  public static Found cudart() {
    return CACHE.computeIfAbsent(CUDART,
        n -> loadFirst(n, cudaLibraryDirs(List.of("nvidia/cu13/lib", "nvidia/cuda_runtime/lib"))));
  }

  /** {@code libcublasLt.so.13} from the CUDA directories (cached). */
  public static Found cublasLt() {
    return CACHE.computeIfAbsent(CUBLASLT,
        n -> loadFirst(n, cudaLibraryDirs(List.of("nvidia/cu13/lib", "nvidia/cublas/lib"))));
  }

  /**
   * Tries {@code dir/fileName} for each directory in order, then the dynamic loader's search by
   * name; the first that loads wins. Never throws for a missing or unloadable library.
   */
  public static Found loadFirst(String fileName, List<Path> dirs) {
    List<Path> candidates = new ArrayList<>();
    for (Path d : dirs) {
      candidates.add(d.resolve(fileName));
    }
    return loadFirst(candidates, fileName);
  }

  /**
   * Loads the first of {@code candidates} that exists and loads; when none does and
   * {@code bareName} is non-null, asks the dynamic loader for {@code bareName} itself.
   */
  @SuppressWarnings("restricted") // loading native code is this class's purpose
  public static Found loadFirst(List<Path> candidates, String bareName) {
    String unsupported = NativeLibraries.unsupportedPlatform();
    if (unsupported != null) {
      return new Found(Optional.empty(), Optional.empty(), unsupported, List.copyOf(candidates));
    }
    List<String> errors = new ArrayList<>();
    Set<Path> tried = new LinkedHashSet<>();
    for (Path c : candidates) {
      Path p = c.toAbsolutePath().normalize();
      if (!tried.add(p) || !Files.isRegularFile(p)) {
        continue;
      }
      try {
        SymbolLookup l = SymbolLookup.libraryLookup(p, Arena.global());
        return new Found(Optional.of(l), Optional.of(p), null, List.copyOf(tried));
      } catch (IllegalArgumentException | IllegalCallerException e) {
        errors.add(p + ": " + e.getMessage());
      }
    }
    if (bareName != null) {
      try {
        SymbolLookup l = SymbolLookup.libraryLookup(bareName, Arena.global());
        return new Found(Optional.of(l), Optional.empty(), null, List.copyOf(tried));
      } catch (IllegalArgumentException | IllegalCallerException e) {
        errors.add("dynamic loader search for " + bareName + ": " + e.getMessage());
      }
    }
    StringBuilder why = new StringBuilder();
    why.append(bareName != null ? bareName : "library").append(" not found or not loadable; searched ");
    List<String> dirs = new ArrayList<>();
    for (Path c : candidates) {
      dirs.add(String.valueOf(c.toAbsolutePath().normalize().getParent()));
    }
    why.append(dirs.isEmpty() ? "(no directories)" : String.join(", ", new LinkedHashSet<>(dirs)));
    why.append(bareName != null ? ", and the dynamic loader's default path" : "");
    if (!errors.isEmpty()) {
      why.append("; errors: ").append(String.join("; ", errors));
    }
    return new Found(Optional.empty(), Optional.empty(), why.toString(), List.copyOf(candidates));
  }

  /**
   * The directories where CUDA libraries may be, in search order (see the class comment);
   * {@code pythonSubdirs} are the folders below each site-packages directory.
   */
  public static List<Path> cudaLibraryDirs(List<String> pythonSubdirs) {
    Set<Path> dirs = new LinkedHashSet<>();
    addPathList(dirs, Knob.CUDA_LIB_DIR.get());
    for (Knob env : List.of(Knob.CUDA_HOME, Knob.CUDA_PATH, Knob.CUDA_ROOT)) {
      String home = env.get();
      if (home != null && !home.isBlank()) {
        dirs.add(Path.of(home, "lib64"));
        dirs.add(Path.of(home, "lib"));
      }
    }
    dirs.add(Path.of("/usr/local/cuda/lib64"));
    dirs.add(Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));
    addPathList(dirs, Knob.LD_LIBRARY_PATH.get());
    for (Path sp : pythonSitePackages()) {
      for (String sub : pythonSubdirs) {
        dirs.add(sp.resolve(sub));
      }
    }
    repoRoot().ifPresent(r -> dirs.add(r.resolve(".tools/cuda/nvidia/cu13/lib")));
    return List.copyOf(dirs);
  }

  private static void addPathList(Set<Path> dirs, String list) {
    if (list == null) {
      return;
    }
    for (String s : list.split(File.pathSeparator)) {
      if (!s.isBlank()) {
        dirs.add(Path.of(s.strip()));
      }
    }
  }

  private static volatile List<Path> sitePackages;

  /** site-packages (and the user site) of {@code python3} on PATH; empty when there is none. */
  static List<Path> pythonSitePackages() {
    List<Path> sp = sitePackages;
    if (sp == null) {
      synchronized (SystemLibraries.class) {
        if (sitePackages == null) {
          sitePackages = askPython();
        }
        sp = sitePackages;
      }
    }
    return sp;
  }

  private static List<Path> askPython() {
    Path out = null;
    try {
      out = Files.createTempFile("lmoe-site", ".txt");
      Process p = new ProcessBuilder("python3", "-c",
          "import site\n"
              + "ps = list(site.getsitepackages())\n"
              + "try:\n    ps.append(site.getusersitepackages())\nexcept Exception:\n    pass\n"
              + "print('\\n'.join(ps))")
          .redirectErrorStream(true).redirectOutput(out.toFile()).start();
      if (!p.waitFor(10, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return List.of();
      }
      if (p.exitValue() != 0) {
        return List.of();
      }
      List<Path> r = new ArrayList<>();
      for (String line : Files.readAllLines(out, StandardCharsets.UTF_8)) {
        if (!line.isBlank()) {
          r.add(Path.of(line.strip()));
        }
      }
      return List.copyOf(r);
    } catch (IOException | RuntimeException e) {
      return List.of(); // no python3: nothing to search there
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return List.of();
    } finally {
      if (out != null) {
        try {
          Files.deleteIfExists(out);
        } catch (IOException ignored) {
          // a temp file; best effort
        }
      }
    }
  }

  /** {@code -Dlatentmoe.repo.dir}, else the nearest ancestor of the working dir with .tools/cuda. */
  static Optional<Path> repoRoot() {
    String p = Knob.REPO_DIR.get();
    if (p != null && !p.isBlank()) {
      return Optional.of(Path.of(p).toAbsolutePath());
    }
    for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
      if (Files.isDirectory(d.resolve(".tools/cuda"))) {
        return Optional.of(d);
      }
    }
    return Optional.empty();
  }
}
