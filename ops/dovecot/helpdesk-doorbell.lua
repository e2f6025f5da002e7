-- Dovecot push-notification script: rings helpdesk intake's IMAP doorbell when mail is delivered or appended.
--
-- The adapter (`helpdesk intake imap` with HELPDESK_IMAP_DOORBELL=host:port) then leaves IDLE and reads the
-- folder at once, instead of when Dovecot's IDLE reports the mail (Dovecot waits 500 ms before it does). The
-- datagram carries only the user and folder names: it is a hint to look, never the mail. A datagram lost or
-- never sent costs only that wait: IDLE still reports the mail.
--
-- Needs lua-socket (Debian: lua-socket) and, in dovecot.conf (see README, "IMAP doorbell"):
--   mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua
--   plugin {
--     push_notification_driver = lua:file=/etc/dovecot/helpdesk-doorbell.lua
--     helpdesk_doorbell = 127.0.0.1:10143
--   }

local socket = require("socket")

local MAX_NAME = 200 -- bytes of a user or folder name sent; the adapter reads at most 512 bytes a datagram

local udp = nil

local function target(user)
  local setting = user:plugin_getenv("helpdesk_doorbell")
  if setting == nil or setting == "" then
    return nil
  end
  local host, port = string.match(setting, "^%[?([^%]]+)%]?:(%d+)$")
  if host == nil then
    dovecot.i_warning("helpdesk_doorbell: expected host:port, got " .. setting)
    return nil
  end
  return host, tonumber(port)
end

function dovecot_lua_notify_begin_txn(user)
  return { user = user, folders = {} }
end

function dovecot_lua_notify_event_message_new(ctx, event)
  ctx.folders[event.mailbox] = true
end

function dovecot_lua_notify_event_message_append(ctx, event)
  ctx.folders[event.mailbox] = true
end

function dovecot_lua_notify_end_txn(ctx, success)
  if success == false or next(ctx.folders) == nil then
    return
  end
  local host, port = target(ctx.user)
  if host == nil then
    return
  end
  if udp == nil then
    udp = socket.udp()
    udp:settimeout(0) -- never hold up a delivery: a datagram that cannot be sent now is dropped
  end
  local name = string.sub(ctx.user.username or "", 1, MAX_NAME)
  for folder, _ in pairs(ctx.folders) do
    udp:sendto(name .. "\t" .. string.sub(folder, 1, MAX_NAME), host, port)
  end
end
