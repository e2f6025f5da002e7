-- Dovecot push-notification script: rings helpdesk intake's IMAP doorbell when mail is delivered or appended.
--
-- The adapter (`helpdesk intake imap` with HELPDESK_IMAP_DOORBELL=host:port) then leaves IDLE and reads the
-- folder at once, instead of when Dovecot's IDLE reports the mail (Dovecot waits 500 ms before it does). The
-- datagram carries only the user and folder names: it is a hint to look, never the mail. A datagram lost or
-- never sent costs only that wait: IDLE still reports the mail. Nothing here can fail or hold up a delivery:
-- the datagram is sent without waiting, and any problem is logged once by each mail process and then left alone.
--
-- Needs lua-socket (Debian: lua-socket) and, in dovecot.conf (see the README, "E-mail over IMAP"):
--   mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua
--   plugin {
--     push_notification_driver = lua:file=/etc/dovecot/helpdesk-doorbell.lua
--     helpdesk_doorbell = 127.0.0.1:10143    # a numeric address (IPv6: [::1]:10143): LuaSocket resolves no names
--   }

local MAX_NAME = 200 -- bytes of a user or folder name sent; the adapter reads at most 512 bytes a datagram

local found, socket = pcall(require, "socket")
local udp = nil
local warned = {}

local function warn_once(key, text)
  if not warned[key] then
    warned[key] = true
    dovecot.i_warning("helpdesk doorbell: " .. text)
  end
end

local function target(user)
  local setting = user:plugin_getenv("helpdesk_doorbell")
  if setting == nil or setting == "" then
    return nil
  end
  local host, port = string.match(setting, "^%[([%x:]+)%]:(%d+)$")
  if host == nil then
    host, port = string.match(setting, "^([%d%.]+):(%d+)$")
  end
  if host == nil then
    warn_once("setting", "helpdesk_doorbell must be a numeric address and a port (127.0.0.1:10143, [::1]:10143), not " .. setting)
    return nil
  end
  return host, tonumber(port)
end

local function sender(host)
  if udp == nil then
    if not found then
      warn_once("socket", "lua-socket is not installed: " .. tostring(socket))
      return nil
    end
    local made, problem = (string.find(host, ":", 1, true) and socket.udp6 or socket.udp)()
    if made == nil then
      warn_once("udp", "no UDP socket: " .. tostring(problem))
      return nil
    end
    made:settimeout(0) -- never wait: a datagram that cannot be sent now is dropped
    udp = made
  end
  return udp
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
  local out = sender(host)
  if out == nil then
    return
  end
  local name = string.sub(ctx.user.username or "", 1, MAX_NAME)
  for folder, _ in pairs(ctx.folders) do
    local sent, problem = out:sendto(name .. "\t" .. string.sub(folder, 1, MAX_NAME), host, port)
    if sent == nil then
      warn_once("send:" .. tostring(problem), "cannot send to " .. host .. ":" .. port .. ": " .. tostring(problem))
    end
  end
end
