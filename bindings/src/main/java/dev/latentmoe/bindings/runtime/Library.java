package dev.latentmoe.bindings.runtime;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A shared library as one jextract-shaped header class sees it: its symbols (or why there are
 * none), the file it came from, and the descriptor of every function the class binds, in binding
 * order ({@link #descriptors()}, read by the header drift tests). One instance per header class.
 */
public final class Library {
  private final SymbolLookup lookup;
  private final String unavailableReason;
  private final String file;
  private final List<Path> searched;
  private final Map<String, FunctionDescriptor> descriptors = new LinkedHashMap<>();

  /**
   * @param lookup the symbols, or null when the library was not loaded
   * @param unavailableReason why not (null when loaded)
   * @param file the file loaded, or its name when none was
   * @param searched the candidate files tried, in order
   */
  public Library(SymbolLookup lookup, String unavailableReason, String file, List<Path> searched) {
    this.lookup = lookup;
    this.unavailableReason = unavailableReason;
    this.file = file;
    this.searched = List.copyOf(searched);
  }

  /** One of our own libraries ({@code lib<baseName>.so}), found by {@link NativeLibraries}. */
  public static Library ours(String baseName) {
    NativeLibraries.Result r = NativeLibraries.tryLoad(baseName);
    String file = NativeLibraries.loadedPath(baseName).map(String::valueOf)
        .orElse(NativeLibraries.fileName(baseName));
    return new Library(r.lookup().orElse(null), r.reason(), file, List.of());
  }

  /** Whether the library was loaded (individual symbols may still be missing). */
  public boolean isAvailable() {
    return lookup != null;
  }

  /** Why the library could not be loaded, or empty when it was. */
  public Optional<String> unavailableReason() {
    return Optional.ofNullable(unavailableReason);
  }

  /** The file loaded, or the bare file name when the dynamic loader found it by name or nothing loaded. */
  public String file() {
    return file;
  }

  /** The candidate files tried, in order (empty for our own libraries). */
  public List<Path> searched() {
    return searched;
  }

  /** C function name to its descriptor, in binding order (a live, unmodifiable view). */
  public Map<String, FunctionDescriptor> descriptors() {
    return Collections.unmodifiableMap(descriptors);
  }

  /**
   * Records {@code fd} under {@code name} and binds it: a downcall handle when the symbol is there,
   * else {@link Downcalls#unavailable} with the reason (library missing, or symbol not in it).
   */
  public MethodHandle downcall(String name, FunctionDescriptor fd) {
    descriptors.put(name, fd);
    if (lookup == null) {
      return Downcalls.unavailable(name, fd, unavailableReason);
    }
    Optional<MemorySegment> symbol = lookup.find(name);
    if (symbol.isEmpty()) {
      return Downcalls.unavailable(name, fd, "symbol not found in " + file);
    }
    return Downcalls.bind(symbol.get(), fd);
  }
}
