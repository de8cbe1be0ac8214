package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.ADDRESS;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.invoke.VarHandle;

/**
 * {@code struct lmoe_cuda_weights}: the CUDA backend's weights, one {@link lmoe_cuda_matrix} per matrix kind
 * (DEVICE pointers; expert matrices are one contiguous [N, rows, cols] array per kind) and the gate bias (see
 * latentmoe_cuda.h).
 *
 * <p>jextract-shaped accessors: {@code field(struct)} reads, {@code field(struct, value)} writes;
 * {@code LatentmoeHeaderDriftTest} checks the layout against the header.
 */
public final class lmoe_cuda_weights {

  private lmoe_cuda_weights() {}

  // No padding needed: every field is naturally aligned at its offset (the drift test checks).
  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      lmoe_cuda_matrix.layout().withName("gate"),
      ADDRESS.withName("gate_bias"),
      lmoe_cuda_matrix.layout().withName("latent_down"),
      lmoe_cuda_matrix.layout().withName("latent_up"),
      lmoe_cuda_matrix.layout().withName("expert_up"),
      lmoe_cuda_matrix.layout().withName("expert_gate"),
      lmoe_cuda_matrix.layout().withName("expert_down"),
      lmoe_cuda_matrix.layout().withName("shared_up"),
      lmoe_cuda_matrix.layout().withName("shared_gate"),
      lmoe_cuda_matrix.layout().withName("shared_down")).withName("lmoe_cuda_weights");

  /** The layout of {@code lmoe_cuda_weights}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(lmoe_cuda_weights)}. */
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

  public static final GroupLayout gate$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("gate"));
  public static final long gate$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("gate"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment gate(MemorySegment struct) {
    return struct.asSlice(gate$OFFSET, gate$LAYOUT.byteSize());
  }

  public static void gate(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, gate$OFFSET, gate$LAYOUT.byteSize());
  }

  public static final AddressLayout gate_bias$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("gate_bias"));
  public static final long gate_bias$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("gate_bias"));
  public static final VarHandle gate_bias$VH = $LAYOUT.varHandle(PathElement.groupElement("gate_bias"));

  public static MemorySegment gate_bias(MemorySegment struct) {
    return struct.get(gate_bias$LAYOUT, gate_bias$OFFSET);
  }

  public static void gate_bias(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(gate_bias$LAYOUT, gate_bias$OFFSET, fieldValue);
  }

  public static final GroupLayout latent_down$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("latent_down"));
  public static final long latent_down$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("latent_down"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment latent_down(MemorySegment struct) {
    return struct.asSlice(latent_down$OFFSET, latent_down$LAYOUT.byteSize());
  }

  public static void latent_down(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, latent_down$OFFSET, latent_down$LAYOUT.byteSize());
  }

  public static final GroupLayout latent_up$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("latent_up"));
  public static final long latent_up$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("latent_up"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment latent_up(MemorySegment struct) {
    return struct.asSlice(latent_up$OFFSET, latent_up$LAYOUT.byteSize());
  }

  public static void latent_up(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, latent_up$OFFSET, latent_up$LAYOUT.byteSize());
  }

  public static final GroupLayout expert_up$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("expert_up"));
  public static final long expert_up$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("expert_up"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment expert_up(MemorySegment struct) {
    return struct.asSlice(expert_up$OFFSET, expert_up$LAYOUT.byteSize());
  }

  public static void expert_up(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, expert_up$OFFSET, expert_up$LAYOUT.byteSize());
  }

  public static final GroupLayout expert_gate$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("expert_gate"));
  public static final long expert_gate$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("expert_gate"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment expert_gate(MemorySegment struct) {
    return struct.asSlice(expert_gate$OFFSET, expert_gate$LAYOUT.byteSize());
  }

  public static void expert_gate(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, expert_gate$OFFSET, expert_gate$LAYOUT.byteSize());
  }

  public static final GroupLayout expert_down$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("expert_down"));
  public static final long expert_down$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("expert_down"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment expert_down(MemorySegment struct) {
    return struct.asSlice(expert_down$OFFSET, expert_down$LAYOUT.byteSize());
  }

  public static void expert_down(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, expert_down$OFFSET, expert_down$LAYOUT.byteSize());
  }

  public static final GroupLayout shared_up$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("shared_up"));
  public static final long shared_up$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("shared_up"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment shared_up(MemorySegment struct) {
    return struct.asSlice(shared_up$OFFSET, shared_up$LAYOUT.byteSize());
  }

  public static void shared_up(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, shared_up$OFFSET, shared_up$LAYOUT.byteSize());
  }

  public static final GroupLayout shared_gate$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("shared_gate"));
  public static final long shared_gate$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("shared_gate"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment shared_gate(MemorySegment struct) {
    return struct.asSlice(shared_gate$OFFSET, shared_gate$LAYOUT.byteSize());
  }

  public static void shared_gate(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, shared_gate$OFFSET, shared_gate$LAYOUT.byteSize());
  }

  public static final GroupLayout shared_down$LAYOUT =
      (GroupLayout) $LAYOUT.select(PathElement.groupElement("shared_down"));
  public static final long shared_down$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("shared_down"));

  /** A slice of {@code struct} viewing the nested {@code lmoe_cuda_matrix} (writes go to the struct). */
  public static MemorySegment shared_down(MemorySegment struct) {
    return struct.asSlice(shared_down$OFFSET, shared_down$LAYOUT.byteSize());
  }

  public static void shared_down(MemorySegment struct, MemorySegment fieldValue) {
    MemorySegment.copy(fieldValue, 0L, struct, shared_down$OFFSET, shared_down$LAYOUT.byteSize());
  }
}
