{
  "targets": [
    {
      "target_name": "lucid_fuse",
      "sources": ["native/lucid_fuse.c"],
      "cflags": ["<!@(pkg-config --cflags fuse3)", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    },
    {
      "target_name": "lucid_aead",
      "sources": ["native/lucid_aead.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
