package dev.latentmoe.bench.nvidia;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.latentmoe.bindings.runtime.Unsigned;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.SequenceLayout;

/**
 * {@code cublasLtMatmulAlgo_t} (cublasLt.h): an opaque algorithm description, {@code uint64_t
 * data[8]}. jextract-shaped; the drift test checks the layout against the header.
 */
public final class cublasLtMatmulAlgo_t {

  private cublasLtMatmulAlgo_t() {}

  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      MemoryLayout.sequenceLayout(8, JAVA_LONG).withName("data")).withName("cublasLtMatmulAlgo_t");

  /** The layout of {@code cublasLtMatmulAlgo_t}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(cublasLtMatmulAlgo_t)}. */
  public static long sizeof() {
    return $LAYOUT.byteSize();
  }

  /** A struct from {@code allocator} (zeroed when that is an Arena). */
  public static MemorySegment allocate(SegmentAllocator allocator) {
    return allocator.allocate($LAYOUT);
  }

  public static final SequenceLayout data$LAYOUT =
      (SequenceLayout) $LAYOUT.select(PathElement.groupElement("data"));
  public static final long data$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("data"));

  /** The {@code data} array (uint64_t[8]) as a slice of the struct. */
  @Unsigned
  public static MemorySegment data(MemorySegment struct) {
    return struct.asSlice(data$OFFSET, data$LAYOUT.byteSize());
  }
}
