package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout.OfInt;
import java.lang.invoke.VarHandle;

/**
 * {@code struct lmoe_cuda_tuning}: the CUDA backend's knobs (see latentmoe_cuda.h for each field).
 *
 * <p>jextract-shaped accessors: {@code field(struct)} reads, {@code field(struct, value)} writes;
 * {@code LatentmoeHeaderDriftTest} checks the layout against the header.
 */
public final class lmoe_cuda_tuning {

  private lmoe_cuda_tuning() {}

  // No padding needed: every field is an int32_t.
  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      JAVA_INT.withName("experts"),
      JAVA_INT.withName("fc1_tile"),
      JAVA_INT.withName("decode"),
      JAVA_INT.withName("decode_max_tokens"),
      JAVA_INT.withName("decode_fused"),
      JAVA_INT.withName("pdl"),
      JAVA_INT.withName("prefetch_kb"),
      JAVA_INT.withName("fc2_blocks_per_sm"),
      JAVA_INT.withName("min_blocks"),
      JAVA_INT.withName("stream"),
      JAVA_INT.withName("stream_dense")).withName("lmoe_cuda_tuning");

  /** The layout of {@code lmoe_cuda_tuning}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(lmoe_cuda_tuning)}. */
  public static long sizeof() {
    return $LAYOUT.byteSize();
  }

  /** A struct from {@code allocator} (zeroed when that is an Arena). */
  public static MemorySegment allocate(SegmentAllocator allocator) {
    return allocator.allocate($LAYOUT);
  }

  public static final OfInt experts$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("experts"));
  public static final long experts$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("experts"));
  public static final VarHandle experts$VH = $LAYOUT.varHandle(PathElement.groupElement("experts"));

  public static int experts(MemorySegment struct) {
    return struct.get(experts$LAYOUT, experts$OFFSET);
  }

  public static void experts(MemorySegment struct, int fieldValue) {
    struct.set(experts$LAYOUT, experts$OFFSET, fieldValue);
  }

  public static final OfInt fc1_tile$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("fc1_tile"));
  public static final long fc1_tile$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("fc1_tile"));
  public static final VarHandle fc1_tile$VH = $LAYOUT.varHandle(PathElement.groupElement("fc1_tile"));

  public static int fc1_tile(MemorySegment struct) {
    return struct.get(fc1_tile$LAYOUT, fc1_tile$OFFSET);
  }

  public static void fc1_tile(MemorySegment struct, int fieldValue) {
    struct.set(fc1_tile$LAYOUT, fc1_tile$OFFSET, fieldValue);
  }

  public static final OfInt decode$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("decode"));
  public static final long decode$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("decode"));
  public static final VarHandle decode$VH = $LAYOUT.varHandle(PathElement.groupElement("decode"));

  public static int decode(MemorySegment struct) {
    return struct.get(decode$LAYOUT, decode$OFFSET);
  }

  public static void decode(MemorySegment struct, int fieldValue) {
    struct.set(decode$LAYOUT, decode$OFFSET, fieldValue);
  }

  public static final OfInt decode_max_tokens$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("decode_max_tokens"));
  public static final long decode_max_tokens$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("decode_max_tokens"));
  public static final VarHandle decode_max_tokens$VH = $LAYOUT.varHandle(PathElement.groupElement("decode_max_tokens"));

  public static int decode_max_tokens(MemorySegment struct) {
    return struct.get(decode_max_tokens$LAYOUT, decode_max_tokens$OFFSET);
  }

  public static void decode_max_tokens(MemorySegment struct, int fieldValue) {
    struct.set(decode_max_tokens$LAYOUT, decode_max_tokens$OFFSET, fieldValue);
  }

  public static final OfInt decode_fused$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("decode_fused"));
  public static final long decode_fused$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("decode_fused"));
  public static final VarHandle decode_fused$VH = $LAYOUT.varHandle(PathElement.groupElement("decode_fused"));

  public static int decode_fused(MemorySegment struct) {
    return struct.get(decode_fused$LAYOUT, decode_fused$OFFSET);
  }

  public static void decode_fused(MemorySegment struct, int fieldValue) {
    struct.set(decode_fused$LAYOUT, decode_fused$OFFSET, fieldValue);
  }

  public static final OfInt pdl$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("pdl"));
  public static final long pdl$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("pdl"));
  public static final VarHandle pdl$VH = $LAYOUT.varHandle(PathElement.groupElement("pdl"));

  public static int pdl(MemorySegment struct) {
    return struct.get(pdl$LAYOUT, pdl$OFFSET);
  }

  public static void pdl(MemorySegment struct, int fieldValue) {
    struct.set(pdl$LAYOUT, pdl$OFFSET, fieldValue);
  }

  public static final OfInt prefetch_kb$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("prefetch_kb"));
  public static final long prefetch_kb$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("prefetch_kb"));
  public static final VarHandle prefetch_kb$VH = $LAYOUT.varHandle(PathElement.groupElement("prefetch_kb"));

  public static int prefetch_kb(MemorySegment struct) {
    return struct.get(prefetch_kb$LAYOUT, prefetch_kb$OFFSET);
  }

  public static void prefetch_kb(MemorySegment struct, int fieldValue) {
    struct.set(prefetch_kb$LAYOUT, prefetch_kb$OFFSET, fieldValue);
  }

  public static final OfInt fc2_blocks_per_sm$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("fc2_blocks_per_sm"));
  public static final long fc2_blocks_per_sm$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("fc2_blocks_per_sm"));
  public static final VarHandle fc2_blocks_per_sm$VH = $LAYOUT.varHandle(PathElement.groupElement("fc2_blocks_per_sm"));

  public static int fc2_blocks_per_sm(MemorySegment struct) {
    return struct.get(fc2_blocks_per_sm$LAYOUT, fc2_blocks_per_sm$OFFSET);
  }

  public static void fc2_blocks_per_sm(MemorySegment struct, int fieldValue) {
    struct.set(fc2_blocks_per_sm$LAYOUT, fc2_blocks_per_sm$OFFSET, fieldValue);
  }

  public static final OfInt min_blocks$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("min_blocks"));
  public static final long min_blocks$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("min_blocks"));
  public static final VarHandle min_blocks$VH = $LAYOUT.varHandle(PathElement.groupElement("min_blocks"));

  public static int min_blocks(MemorySegment struct) {
    return struct.get(min_blocks$LAYOUT, min_blocks$OFFSET);
  }

  public static void min_blocks(MemorySegment struct, int fieldValue) {
    struct.set(min_blocks$LAYOUT, min_blocks$OFFSET, fieldValue);
  }

  public static final OfInt stream$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("stream"));
  public static final long stream$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("stream"));
  public static final VarHandle stream$VH = $LAYOUT.varHandle(PathElement.groupElement("stream"));

  public static int stream(MemorySegment struct) {
    return struct.get(stream$LAYOUT, stream$OFFSET);
  }

  public static void stream(MemorySegment struct, int fieldValue) {
    struct.set(stream$LAYOUT, stream$OFFSET, fieldValue);
  }

  public static final OfInt stream_dense$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("stream_dense"));
  public static final long stream_dense$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("stream_dense"));
  public static final VarHandle stream_dense$VH = $LAYOUT.varHandle(PathElement.groupElement("stream_dense"));

  public static int stream_dense(MemorySegment struct) {
    return struct.get(stream_dense$LAYOUT, stream_dense$OFFSET);
  }

  public static void stream_dense(MemorySegment struct, int fieldValue) {
    struct.set(stream_dense$LAYOUT, stream_dense$OFFSET, fieldValue);
  }

}
