package dev.latentmoe.memory;

/** Where a tensor's bytes live. Host memory (plain or pinned) is {@link Kind#CPU}. */
public record Device(Kind kind, int id) {
    public enum Kind { CPU, CUDA }

    public static final Device CPU = new Device(Kind.CPU, 0);

    public static Device cuda(int id) { return new Device(Kind.CUDA, id); }

    public Device {
        if (kind == null) throw new IllegalArgumentException("device kind is null");
        if (id < 0) throw new IllegalArgumentException("device id " + id + " < 0");
    }

    public boolean isHost() { return kind == Kind.CPU; }

    @Override public String toString() { return kind == Kind.CPU ? "cpu" : "cuda:" + id; }
}
