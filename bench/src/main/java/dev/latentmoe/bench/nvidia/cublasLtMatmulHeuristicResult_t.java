package dev.latentmoe.bench.nvidia;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout.OfFloat;
import java.lang.foreign.ValueLayout.OfInt;
import java.lang.foreign.ValueLayout.OfLong;

/**
 * {@code cublasLtMatmulHeuristicResult_t} (cublasLt.h): one result of
 * {@code cublasLtMatmulAlgoGetHeuristic}: {@code cublasLtMatmulAlgo_t algo; size_t workspaceSize;
 * cublasStatus_t state; float wavesCount; int reserved[4];}. jextract-shaped; the drift test
 * checks the layout against the header.
 */
public final class cublasLtMatmulHeuristicResult_t {

  private cublasLtMatmulHeuristicResult_t() {}

  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      cublasLtMatmulAlgo_t.layout().withName("algo"),
      JAVA_LONG.withName("workspaceSize"),
      JAVA_INT.withName("state"),
      JAVA_FLOAT.withName("wavesCount"),
      MemoryLayout.sequenceLayout(4, JAVA_INT).withName("reserved"))
      .withName("cublasLtMatmulHeuristicResult_t");

  /** The layout of {@code cublasLtMatmulHeuristicResult_t}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(cublasLtMatmulHeuristicResult_t)}. */
  public static long sizeof() {
    return $LAYOUT.byteSize();
  }

  /** A struct from {@code allocator} (zeroed when that is an Arena). */
  public static MemorySegment allocate(SegmentAllocator allocator) {
    return allocator.allocate($LAYOUT);
  }

  /** An array of {@code count} structs from {@code allocator} (zeroed when that is an Arena). */
  public static MemorySegment allocateArray(long count, SegmentAllocator allocator) {
    return allocator.allocate(MemoryLayout.sequenceLayout(count, $LAYOUT));
  }

  /** Element {@code index} of an array of structs. */
  public static MemorySegment asSlice(MemorySegment array, long index) {
    return array.asSlice($LAYOUT.byteSize() * index, $LAYOUT);
  }

  public static final long algo$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("algo"));

  /** The {@code algo} member as a slice (pass it to {@code cublasLtMatmul}). */
  public static MemorySegment algo(MemorySegment struct) {
    return struct.asSlice(algo$OFFSET, cublasLtMatmulAlgo_t.layout());
  }

  public static final OfLong workspaceSize$LAYOUT =
      (OfLong) $LAYOUT.select(PathElement.groupElement("workspaceSize"));
  public static final long workspaceSize$OFFSET =
      $LAYOUT.byteOffset(PathElement.groupElement("workspaceSize"));

  public static long workspaceSize(MemorySegment struct) {
    return struct.get(workspaceSize$LAYOUT, workspaceSize$OFFSET);
  }

  public static final OfInt state$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("state"));
  public static final long state$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("state"));

  public static int state(MemorySegment struct) {
    return struct.get(state$LAYOUT, state$OFFSET);
  }

  public static final OfFloat wavesCount$LAYOUT =
      (OfFloat) $LAYOUT.select(PathElement.groupElement("wavesCount"));
  public static final long wavesCount$OFFSET =
      $LAYOUT.byteOffset(PathElement.groupElement("wavesCount"));

  public static float wavesCount(MemorySegment struct) {
    return struct.get(wavesCount$LAYOUT, wavesCount$OFFSET);
  }
}
