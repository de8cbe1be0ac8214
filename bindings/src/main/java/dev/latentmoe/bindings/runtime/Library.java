package dev.latentmoe.bindings.runtime;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
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

  /**
   * As {@link #ours(String)}, but refuses a library whose {@code int32_t versionFunction(void)}
   * does not return {@code expected}: a native jar of another release may lay its structs out
   * differently, so nothing is bound and every call throws the reason instead of reading memory
   * wrongly.
   */
  @SuppressWarnings("restricted") // one call of the library's own version function
  public static Library ours(String baseName, String versionFunction, int expected) {
    Library lib = ours(baseName);
    if (lib.lookup == null) {
      return lib;
    }
    String source = NativeLibraries.loadedSource(baseName).orElse(lib.file);
    Optional<MemorySegment> symbol = lib.lookup.find(versionFunction);
    if (symbol.isEmpty()) {
      return new Library(null, lib.file + " (" + source + ") has no " + versionFunction
          + ": not a LatentMoE library of this release", lib.file, List.of());
    }
    int found;
    try {
      found = (int) Linker.nativeLinker()
          .downcallHandle(symbol.get(), FunctionDescriptor.of(ValueLayout.JAVA_INT))
          .invokeExact();
    } catch (Throwable t) {
      return new Library(null, versionFunction + " failed: " + t, lib.file, List.of());
    }
    if (found != expected) {
      return new Library(null, lib.file + " (" + source + ") implements ABI " + found
          + " but these bindings need ABI " + expected + ": use the latentmoe-native jar of the"
          + " same version as latentmoe-bindings", lib.file, List.of());
    }
    return lib;
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
   * The function {@code name} (bound before with {@link #downcall}) with its pointer arguments at
   * {@code positions} taken as raw addresses ({@code long}) instead of segments. For callers that
   * pass pointers into memory they already hand over as another segment argument (which keeps it
   * alive for the call), and that must not allocate a slice per call. Same symbol and C signature: a
   * pointer and an int64 travel alike in the x86-64 calling convention. Not recorded in
   * {@link #descriptors()} (the header has one signature per function).
   *
   * @throws IllegalArgumentException when {@code name} is not bound yet or a position is not a pointer
   */
  public MethodHandle addressDowncall(String name, int... positions) {
    FunctionDescriptor fd = descriptors.get(name);
    if (fd == null) {
      throw new IllegalArgumentException(name + " is not bound by this library's header class");
    }
    MemoryLayout[] args = fd.argumentLayouts().toArray(new MemoryLayout[0]);
    for (int p : positions) {
      if (p < 0 || p >= args.length || !(args[p] instanceof AddressLayout)) {
        throw new IllegalArgumentException(name + ": argument " + p + " is not a pointer");
      }
      args[p] = ValueLayout.JAVA_LONG;
    }
    FunctionDescriptor raw = fd.returnLayout().map(r -> FunctionDescriptor.of(r, args))
        .orElseGet(() -> FunctionDescriptor.ofVoid(args));
    if (lookup == null) {
      return Downcalls.unavailable(name, raw, unavailableReason);
    }
    Optional<MemorySegment> symbol = lookup.find(name);
    if (symbol.isEmpty()) {
      return Downcalls.unavailable(name, raw, "symbol not found in " + file);
    }
    return Downcalls.bind(symbol.get(), raw);
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
