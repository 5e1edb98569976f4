from imgflow_webhook_sender.main import main

main()
