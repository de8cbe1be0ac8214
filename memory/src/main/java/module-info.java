/** Arenas and tensors; CUDA streams, copies and graphs; file formats; Arrow and DLPack interchange. */
module dev.latentmoe.memory {
    requires transitive dev.latentmoe.bindings;
    requires transitive org.apache.arrow.vector;
    requires transitive org.apache.arrow.memory.core;
    requires org.apache.arrow.memory.unsafe; // the allocation manager a RootAllocator finds reflectively

    exports dev.latentmoe.memory;
    exports dev.latentmoe.memory.cuda;
    exports dev.latentmoe.memory.io;
    exports dev.latentmoe.memory.interop;
}
