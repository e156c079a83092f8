{
  "targets": [
    {
      "target_name": "tsmpi_shm",
      "sources": ["tsmpi_shm.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lpthread", "-lrt"]
    }
  ]
}
