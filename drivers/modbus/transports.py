"""Names of the Modbus transports (kept apart from the adapter so naming one does not load pymodbus)."""

TCP = "tcp"
RTU = "rtu"
RTU_OVER_TCP = "rtu_over_tcp"
