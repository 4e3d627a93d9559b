"""Provisioning and flashing of edge-agent gateways; the command is tools/flash.py (`edge-flash`)."""
