"""The in-memory driver: the whole runtime contract with no engine and no processes.

`driver.MemoryRuntime` is the `Runtime`; its tasks and volumes are in `tasks`, the toy shell
their commands run in is `shell`, commands in tasks (one-off, terminal, attached) are in
`sessions`, servers inside tasks and published ports in `ports`, and the event stream in
`events`. It imports nothing of another driver and nothing of the server (an import contract
says so). `berth.runtime.factory` chooses it; tests import it to steer it.
"""

from berth.runtime.memory.driver import (
    ExecCall,
    ExecHandler,
    ExecReply,
    MemoryRuntime,
    MemoryTask,
    MemoryVolume,
)

__all__ = ["ExecCall", "ExecHandler", "ExecReply", "MemoryRuntime", "MemoryTask", "MemoryVolume"]
