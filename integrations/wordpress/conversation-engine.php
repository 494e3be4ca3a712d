<?php
/**
 * Plugin Name: Conversation Engine
 * Description: Shows the post's Discord discussion (conversation-engine) instead of the theme's comments, and comment counts with reactions in post lists.
 * Version: 1.0.0
 * Requires at least: 5.8
 * Requires PHP: 7.4
 * License: MIT
 *
 * Settings > Conversation Engine: the bot's web address (e.g. https://comments.example.com). Add this
 * blog's origin to the bot's WEB_ALLOWED_ORIGINS.
 */

if (!defined('ABSPATH')) {
    exit;
}

// WordPress includes this file a second time as the comments template (see the comments_template
// filter below): then it only renders the widget. The functions are declared conditionally so the
// second include does not declare them again.
if (function_exists('conversation_engine_widget')) {
    echo conversation_engine_widget(); // phpcs:ignore WordPress.Security.EscapeOutput -- escaped inside
    return;
}

define('CONVERSATION_ENGINE_OPTION', 'conversation_engine_server');

if (!function_exists('conversation_engine_server')) {
    /** The configured server URL without a trailing slash, or '' when not set (the plugin then does nothing). */
    function conversation_engine_server(): string
    {
        $server = (string) get_option(CONVERSATION_ENGINE_OPTION, '');
        return rtrim(esc_url_raw($server, array('https', 'http')), '/');
    }

    /** The widget's script tag for the current post. */
    function conversation_engine_widget(): string
    {
        $server = conversation_engine_server();
        if ($server === '') {
            return '';
        }
        return sprintf('<section id="comments" class="conversation-engine"><script src="%s" data-url="%s" async></script></section>',
            esc_url($server . '/embed.js'), esc_attr(get_permalink()));
    }
}

// -- Settings ----------------------------------------------------------------------------------

add_action('admin_init', function (): void {
    register_setting('conversation_engine', CONVERSATION_ENGINE_OPTION, array(
        'type' => 'string',
        'sanitize_callback' => function ($value): string {
            $url = esc_url_raw(trim((string) $value), array('https', 'http'));
            if ($value !== '' && $url === '') {
                add_settings_error(CONVERSATION_ENGINE_OPTION, 'bad-url',
                    __('The server URL must be an http:// or https:// address.', 'conversation-engine'));
            }
            return rtrim($url, '/');
        },
        'default' => '',
    ));
    add_settings_section('conversation_engine_main', '', '__return_false', 'conversation_engine');
    add_settings_field(CONVERSATION_ENGINE_OPTION, __('Server URL', 'conversation-engine'), function (): void {
        printf('<input type="url" class="regular-text" name="%s" value="%s" placeholder="https://comments.example.com">',
            esc_attr(CONVERSATION_ENGINE_OPTION), esc_attr(conversation_engine_server()));
        echo '<p class="description">' . esc_html__("The bot's web address (WEB_PORT behind your proxy).", 'conversation-engine') . '</p>';
    }, 'conversation_engine', 'conversation_engine_main');
});

add_action('admin_menu', function (): void {
    add_options_page('Conversation Engine', 'Conversation Engine', 'manage_options', 'conversation_engine', function (): void {
        if (!current_user_can('manage_options')) {
            return;
        }
        echo '<div class="wrap"><h1>Conversation Engine</h1><form method="post" action="options.php">';
        settings_fields('conversation_engine');
        do_settings_sections('conversation_engine');
        submit_button();
        echo '</form></div>';
    });
});

// -- The discussion instead of the theme's comments ----------------------------------------------

add_filter('comments_template', function (string $template): string {
    if (conversation_engine_server() === '' || !is_singular()) {
        return $template;
    }
    return __FILE__; // included again, this file renders the widget (see the top of the file)
});

add_filter('comments_open', function (bool $open): bool {
    return conversation_engine_server() === '' ? $open : false; // comments happen in Discord
});

add_action('wp_enqueue_scripts', function (): void {
    $server = conversation_engine_server();
    if ($server === '') {
        return;
    }
    wp_register_script('conversation-engine-counts', $server . '/counts.js', array(), null, array('strategy' => 'async'));
    if (!is_singular()) {
        wp_enqueue_script('conversation-engine-counts');
    }
});

// -- Counts in post lists ------------------------------------------------------------------------

add_filter('comments_number', function (string $output, int $number): string {
    if (conversation_engine_server() === '' || is_singular()) {
        return $output;
    }
    return sprintf('<span data-conversation-count="%s">%s</span>', esc_attr(get_permalink()), wp_kses_post($output));
}, 10, 2);
